"""The pure part of erasure: the pseudonym, and how a stored document is scrubbed."""

from __future__ import annotations

import orjson

from ledger.erasure import pseudonym, scrub, scrub_bytes
from ledger.sealing import Keyring
from tests.webhooks.support import TEST_KEYRING

OTHER_KEYRING = Keyring((b"k" * 32,))


def test_a_pseudonym_is_stable_per_member_and_key_and_does_not_show_the_member() -> None:
    alias = pseudonym(TEST_KEYRING, "m_42")
    assert alias == pseudonym(TEST_KEYRING, "m_42")
    assert alias.startswith("erased_") and "m_42" not in alias
    assert alias != pseudonym(TEST_KEYRING, "m_43")
    assert alias != pseudonym(OTHER_KEYRING, "m_42")


def test_a_document_naming_the_member_loses_its_card_and_merchant_and_keeps_the_rest() -> None:
    batch = [
        {"member_id": "m_42", "amount": 450, "card": {"id": "c1"}, "merchant": {"id": "x"}},
        {"member_id": "m_43", "amount": 120, "card": {"id": "c2"}, "merchant": {"id": "y"}},
    ]
    assert scrub(batch, "m_42", "erased_1") == [
        {"member_id": "erased_1", "amount": 450, "card": {"id": ""}, "merchant": {"id": ""}},
        batch[1],
    ]


def test_a_webhook_body_is_scrubbed_below_the_object_that_names_the_member() -> None:
    body = {
        "type": "stamp.collected",
        "data": {
            "member_id": "m_42",
            "transaction": {"purchase_id": "m_42x", "merchant": {"id": "mer", "name": "Bean"}},
        },
    }
    data = scrub(body, "m_42", "erased_1")["data"]
    assert data["member_id"] == "erased_1"
    assert data["transaction"] == {"purchase_id": "m_42x", "merchant": {"id": "", "name": ""}}


def test_bytes_that_are_not_json_have_the_member_id_replaced_where_it_is_a_whole_string() -> None:
    assert scrub_bytes(b'{not json "m_42"', "m_42", "erased_1") == b'{not json "erased_1"'
    assert scrub_bytes(b'["m_42", "m_42"', "m_42", "e") == b'["e", "e"'
    assert orjson.loads(scrub_bytes(b'{"member_id": "m_42"}', "m_42", "e")) == {"member_id": "e"}


def test_an_id_that_merely_contains_the_members_is_left_alone_in_json_or_not() -> None:
    document = {"member_id": "m10", "merchant": {"name": "m1 coffee"}, "card": {"id": "m1x"}}
    cut_short = b'{"member_id": "m10", "note": "x\\"m1", "merchant": "m1-shop", "amo'
    plain = b"m1m1 paid at m1-shop for m10"

    assert scrub(document, "m1", "e") == document
    for value in (orjson.dumps(document), cut_short, plain):
        assert scrub_bytes(value, "m1", "e") == value
