"""A card transaction message: what is accepted, and the one-line reason for what is not."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from rules import (
    CardTransaction,
    InvalidTransaction,
    TransactionType,
    parse_transaction,
    validate_transaction,
)

TxData = Callable[..., dict[str, Any]]


def encode(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def test_a_valid_message_parses_into_a_transaction(tx_data: TxData) -> None:
    tx = parse_transaction(encode(tx_data()))

    assert tx.type is TransactionType.CLEARING
    assert (tx.amount, tx.currency) == (450, "GBP")
    assert (tx.merchant.id, tx.merchant.mcc, tx.merchant.brand_id) == (
        "mer_soho",
        "5814",
        "brand_bean",
    )
    assert (tx.card.scheme, tx.card.bin, tx.card.last4) == ("visa", "41234567", "4242")
    assert tx.occurred_at == datetime(2025, 3, 11, 8, 15, tzinfo=UTC)


def test_purchase_id_defaults_to_the_event_id(tx_data: TxData) -> None:
    assert parse_transaction(encode(tx_data())).purchase_id == "txn_1"
    assert parse_transaction(encode(tx_data(purchase_id=None))).purchase_id == "txn_1"


def test_an_explicit_purchase_id_is_kept(tx_data: TxData) -> None:
    assert parse_transaction(encode(tx_data(purchase_id="pur_9"))).purchase_id == "pur_9"


def test_unknown_fields_are_ignored(tx_data: TxData) -> None:
    tx = parse_transaction(encode(tx_data(channel="pos", merchant={"terminal": "T1"})))

    assert "channel" not in tx.model_dump()
    assert "terminal" not in tx.merchant.model_dump()


def test_optional_merchant_and_card_details_may_be_left_out(tx_data: TxData) -> None:
    data = tx_data(merchant={"brand_id": None, "country": None, "postcode": None})
    data["card"] = {"id": "card_tok_1", "scheme": "amex"}

    tx = parse_transaction(encode(data))

    assert tx.merchant.brand_id is None and tx.card.bin is None and tx.card.last4 is None


@pytest.mark.parametrize("kind", ["refund", "reversal"])
def test_an_undo_names_the_purchase_it_undoes(tx_data: TxData, kind: str) -> None:
    tx = parse_transaction(encode(tx_data(type=kind, original_id="txn_0")))

    assert tx.original_id == "txn_0" and not tx.is_purchase


def test_occurred_at_is_the_same_instant_held_in_utc(tx_data: TxData) -> None:
    tx = parse_transaction(encode(tx_data(occurred_at="2025-03-11T09:15:00+01:00")))

    assert tx.occurred_at == datetime(2025, 3, 11, 8, 15, tzinfo=UTC)
    assert tx.occurred_at.tzinfo is UTC


def test_a_transaction_cannot_be_changed_once_parsed(tx_data: TxData) -> None:
    tx = parse_transaction(encode(tx_data()))

    with pytest.raises(ValidationError):
        tx.amount = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not valid JSON: "),
        (b"", "not valid JSON: "),
        (b"\xff\xfe{}", "not valid JSON: "),
        (b'{"id": "txn_1",', "not valid JSON: "),
        (b"[1, 2]", "message must be a JSON object"),
        (b'"clearing"', "message must be a JSON object"),
        (b"x" * 70_000, "message is 70000 bytes, above 65536"),
    ],
)
def test_a_message_that_is_not_a_json_object_is_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidTransaction) as caught:
        parse_transaction(raw)

    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"amount": True}, "amount: must be a positive integer of minor units"),
        ({"amount": 4.5}, "amount: must be a positive integer of minor units"),
        ({"amount": 450.0}, "amount: must be a positive integer of minor units"),
        ({"amount": "450"}, "amount: must be a positive integer of minor units"),
        ({"amount": 0}, "amount: must be a positive integer of minor units"),
        ({"amount": -450}, "amount: must be a positive integer of minor units"),
        ({"amount": 2**63}, "amount: must be a positive integer of minor units"),
        ({"currency": "gbp"}, "currency: 'gbp' is not an ISO 4217 currency code such as GBP"),
        ({"currency": "ABC"}, "currency: 'ABC' is not an ISO 4217 currency code such as GBP"),
        ({"type": "chargeback"}, "type: must be one of auth, clearing, refund, reversal"),
        ({"type": "refund"}, "original_id: is required for a refund"),
        ({"type": "reversal"}, "original_id: is required for a reversal"),
        ({"member_id": None}, "member_id: is required"),
        ({"member_id": ""}, "member_id: must not be empty"),
        ({"id": "txn\x001"}, "id: must not contain NUL characters"),
        ({"merchant": "Bean Brothers"}, "merchant: must be an object with id, name and mcc"),
        (
            {"merchant": {"mcc": "581"}},
            "merchant.mcc: is not a 4-digit merchant category code",
        ),
        ({"merchant": {"mcc": 5814}}, "merchant.mcc: must be a string"),
        ({"merchant": {"country": "gb"}}, "merchant.country: is not an upper-case ISO 3166"),
        ({"card": {"scheme": "VISA"}}, "card.scheme: is not a lower-case card scheme"),
        ({"card": {"bin": "41234"}}, "card.bin: is not a BIN of 6 to 8 digits"),
        ({"card": {"last4": "42"}}, "card.last4: is not the last 4 digits of a card"),
        ({"card": {"id": "4111111111111111"}}, "card.id: looks like a full card number"),
        ({"card": {"id": "4111 1111 1111 1111"}}, "card.id: looks like a full card number"),
        ({"card": {"id": "pan-5555-5555-5555-4444"}}, "card.id: looks like a full card number"),
        ({"occurred_at": "2025-03-11T08:15:00"}, "occurred_at: must be an RFC 3339 date-time"),
        ({"occurred_at": 1741680900}, "occurred_at: must be an RFC 3339 date-time"),
        ({"occurred_at": "yesterday"}, "occurred_at: must be an RFC 3339 date-time"),
        # Read laxly, a string of digits would be unix seconds: "72" dated 1970.
        ({"occurred_at": "72"}, "occurred_at: must be an RFC 3339 date-time"),
        ({"occurred_at": "1741680900"}, "occurred_at: must be an RFC 3339 date-time"),
        ({"occurred_at": "2025-03-11T08:15Z"}, "occurred_at: must be an RFC 3339 date-time"),
        ({"occurred_at": "2025-03-11"}, "occurred_at: must be an RFC 3339 date-time"),
    ],
)
def test_an_invalid_field_is_refused_with_its_name(
    tx_data: TxData, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(InvalidTransaction) as caught:
        parse_transaction(encode(tx_data(**changes)))

    assert caught.value.reason.startswith(reason)
    assert "\n" not in caught.value.reason


def test_a_reason_counts_the_problems_it_does_not_spell_out() -> None:
    with pytest.raises(InvalidTransaction) as caught:
        parse_transaction(b'{"id": "txn_1"}')

    assert caught.value.reason == "type: is required (and 6 more)"


def test_a_transaction_built_in_code_follows_the_same_rules(tx_data: TxData) -> None:
    with pytest.raises(ValidationError):
        CardTransaction.model_validate(tx_data(amount=True))


def test_a_decoded_batch_item_is_refused_with_the_same_reason(tx_data: TxData) -> None:
    assert validate_transaction(tx_data()).id == "txn_1"
    with pytest.raises(InvalidTransaction) as caught:
        validate_transaction(tx_data(amount=4.5))

    assert caught.value.reason == "amount: must be a positive integer of minor units"


@pytest.mark.parametrize("item", [[1, 2], "txn", None])
def test_a_batch_item_that_is_not_an_object_is_refused(item: object) -> None:
    with pytest.raises(InvalidTransaction, match=r"^message must be a JSON object$"):
        validate_transaction(item)
