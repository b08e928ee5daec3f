"""The card transaction a bank feed puts on the transactions topic, and its parser."""

from enum import StrEnum
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rules.errors import FieldProblem, InvalidTransaction, describe_validation_error
from rules.fields import (
    Bin,
    CardId,
    CardScheme,
    Country,
    Currency,
    Identifier,
    Last4,
    Mcc,
    Name,
    Postcode,
    Timestamp,
)

# Larger than any honest transaction by two orders of magnitude; refusing early keeps a
# runaway producer from making the parser chew megabytes.
MAX_MESSAGE_BYTES = 64 * 1024

# PostgreSQL's bigint bounds what the ledger can store.
MAX_AMOUNT = 2**63 - 1


class TransactionType(StrEnum):
    """What a card transaction event records about its purchase."""

    AUTH = "auth"
    CLEARING = "clearing"
    REFUND = "refund"
    REVERSAL = "reversal"


STAMPING_TYPES = frozenset({TransactionType.AUTH, TransactionType.CLEARING})
UNDOING_TYPES = frozenset({TransactionType.REFUND, TransactionType.REVERSAL})


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Merchant(_Wire):
    """Where the card was used."""

    id: Identifier
    name: Name
    mcc: Mcc
    brand_id: Identifier | None = None
    country: Country | None = None
    postcode: Postcode | None = None


class Card(_Wire):
    """The card used, by reference only: never its full number."""

    id: CardId
    scheme: CardScheme
    bin: Bin | None = None
    last4: Last4 | None = None


class CardTransaction(_Wire):
    """One event of a card purchase (auth, clearing, refund or reversal) for one member."""

    id: Identifier
    type: TransactionType
    # Defaults to ``id`` (see the validator): a feed that sends one event per purchase
    # need not repeat it.
    purchase_id: Identifier = Field(default=None, validate_default=True)
    # Only read for refunds and reversals, which must name the purchase they undo.
    original_id: Identifier | None = None
    member_id: Identifier
    amount: Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT)]
    currency: Currency
    merchant: Merchant
    card: Card
    occurred_at: Timestamp

    @field_validator("purchase_id", mode="before")
    @classmethod
    def _purchase_defaults_to_id(cls, value: object, info: ValidationInfo) -> object:
        return info.data.get("id") if value is None else value

    @model_validator(mode="after")
    def _undo_names_its_purchase(self) -> Self:
        if self.type in UNDOING_TYPES and self.original_id is None:
            raise FieldProblem("original_id", f"is required for a {self.type}")
        return self

    @property
    def is_purchase(self) -> bool:
        """Whether this is an event of a purchase (auth, clearing), not an undo of one."""
        return self.type in STAMPING_TYPES


_HINTS = {
    "type": "must be one of auth, clearing, refund, reversal",
    "amount": "must be a positive integer of minor units",
    "occurred_at": "must be an RFC 3339 date-time with a UTC offset",
    "merchant": "must be an object with id, name and mcc",
    "card": "must be an object with id and scheme",
}


def parse_transaction(raw: bytes) -> CardTransaction:
    """Validate one transactions-topic message, or raise ``InvalidTransaction`` saying why not."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidTransaction(f"message is {len(raw)} bytes, above {MAX_MESSAGE_BYTES}")
    try:
        return CardTransaction.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidTransaction(_reason(exc)) from exc


def validate_transaction(data: object) -> CardTransaction:
    """Validate one already-decoded transaction (an item of a batch), with the same reasons."""
    try:
        return CardTransaction.model_validate(data)
    except ValidationError as exc:
        raise InvalidTransaction(_reason(exc)) from exc


_BATCH = TypeAdapter(list[CardTransaction])


def parse_batch(raw: bytes) -> list[CardTransaction]:
    """Validate a JSON array of transactions at once; any bad item raises ``InvalidTransaction``.

    The fast path for bank batches: a caller that must keep the good items of a bad batch
    goes on item by item with ``validate_transaction``.
    """
    try:
        return _BATCH.validate_json(raw)
    except ValidationError as exc:
        raise InvalidTransaction(_reason(exc)) from exc


def _reason(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return f"not valid JSON: {first['ctx']['error']}" if "ctx" in first else "not valid JSON"
    if first["type"] == "model_type" and not first["loc"]:
        return "message must be a JSON object"
    lines = describe_validation_error(exc, _HINTS)
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return lines[0] + more
