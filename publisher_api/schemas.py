"""The publisher API's wire models: requests (`XRequest`, `XCreate`) and answers (`XPublic`).

Requests refuse unknown fields (a mass-assignment attempt gets a 400 naming the field) and are
strict about JSON types. Timestamps go out as RFC 3339 in UTC with a `Z`, to the second, as the
K42 documentation shows them, and come in as RFC 3339 with an offset only (`Rfc3339`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core.core_schema import SerializerFunctionWrapHandler

from ledger.collections import CollectionRecord, RewardRecord, StampRecord, WalletEntry
from ledger.programs import ProgramRecord
from publisher_api.pagination import PageInfo, Pagination
from rules.fields import RFC3339


def _rfc3339_seconds(value: datetime) -> str:
    # Whole seconds; webhook bodies keep the fraction (`ledger.outbox.rfc3339`).
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utf8(value: str) -> str:
    """Refuses a lone surrogate: text PostgreSQL (and UTF-8) cannot hold."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from a "\ud800" escape
        raise ValueError("must be valid Unicode text") from exc
    return value


RFC3339_EXAMPLE = "2026-03-02T09:00:00Z"
_RFC3339 = RFC3339


def _rfc3339_text(value: object) -> object:
    # A lax datetime reads a number, or a string of digits, as unix seconds ("72" is 1970),
    # and takes a time without an offset or seconds: only RFC 3339's date-time is a time here.
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        return value
    raise ValueError(f"must be an RFC 3339 date-time with an offset, e.g. {RFC3339_EXAMPLE}")


Rfc3339 = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    Strict(False),  # a strict datetime would refuse the JSON string itself
    WithJsonSchema({"type": "string", "format": "date-time", "example": RFC3339_EXAMPLE}),
]
"""A time in a request: RFC 3339 with its offset, e.g. `2026-03-02T09:00:00Z`, and nothing else."""

PublicTimestamp = Annotated[
    datetime,
    PlainSerializer(_rfc3339_seconds, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2024-01-15T10:30:00Z"}),
]
PublicProgramId = Annotated[
    str,
    Field(pattern=r"^lp_[A-Za-z0-9_-]+$", max_length=64, examples=["lp_abc123"]),
]
CollectionId = Annotated[
    str,
    Field(pattern=r"^sc_[A-Za-z0-9]+$", max_length=40, examples=["sc_xyz789"]),
]
RewardId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=40)]
MemberId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The publisher's own member id: 1 to 200 characters, no control characters.",
        examples=["m_x1y2z3"],
    ),
    AfterValidator(utf8),
]


class StrictRequest(BaseModel):
    """A request body: unknown fields and loose types are refused, never ignored or coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Compact(BaseModel):
    """Leaves out optional parts that are not set, as the K42 documentation shows them."""

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> Any:
        return {key: value for key, value in handler(self).items() if value is not None}


class ProgramListRequest(StrictRequest):
    """Which page of programs to list."""

    pagination: Pagination = Pagination()


class ProgramGetRequest(StrictRequest):
    """The program to read."""

    id: PublicProgramId


class CollectionCreate(StrictRequest):
    """Enroll a member in a program."""

    loyalty_program_id: PublicProgramId
    member_id: MemberId


class CollectionGetRequest(StrictRequest):
    """The collection to read."""

    id: CollectionId


class CollectionDeleteRequest(StrictRequest):
    """The collection to end: its member unenrolls from its program."""

    id: CollectionId


class CollectionListRequest(StrictRequest):
    """Which collections to list: a member's, a program's, or a member's in one program."""

    # At least one of the two, and not null: for clients and schema-driven tests alike.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("member_id", "loyalty_program_id")
            ]
        }
    )

    member_id: MemberId | None = None
    loyalty_program_id: PublicProgramId | None = Field(
        default=None, description="Only the collections of this program."
    )
    include_unenrolled: bool = Field(
        default=False, description="Also list collections whose member unenrolled."
    )
    pagination: Pagination = Pagination(limit=20)

    @model_validator(mode="after")
    def _some_filter(self) -> Self:
        if self.member_id is None and self.loyalty_program_id is None:
            raise ValueError("give member_id, loyalty_program_id or both")
        return self


class StampListRequest(StrictRequest):
    """Which page of a collection's stamp history to list."""

    stamp_collection_id: CollectionId
    pagination: Pagination = Pagination()


class RewardListRequest(StrictRequest):
    """Which rewards to list: those of one member or of one collection (give exactly one)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [{"required": ["member_id"]}, {"required": ["stamp_collection_id"]}]
        }
    )

    member_id: MemberId | SkipJsonSchema[None] = None
    stamp_collection_id: CollectionId | SkipJsonSchema[None] = None
    pagination: Pagination = Pagination()

    @model_validator(mode="after")
    def _one_owner(self) -> Self:
        given = {"member_id", "stamp_collection_id"} & self.model_fields_set
        # An explicit null counts as given, so {"member_id": null} alone is refused too.
        if len(given) != 1 or getattr(self, given.pop()) is None:
            raise ValueError("give exactly one of member_id and stamp_collection_id")
        return self


class RewardGetRequest(StrictRequest):
    """The reward to read."""

    id: RewardId


def integral(value: object) -> object:
    # JSON has one number type: 3.0 is the integer 3 to JSON Schema, and so to us.
    return int(value) if isinstance(value, float) and value.is_integer() else value


class PayoutReportRequest(StrictRequest):
    """The payout system's report of one payout attempt (the `attempt` of the payout message)."""

    # A failure carries its reason, a success none: said in the schema for clients and fuzzers.
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"properties": {"outcome": {"const": "paid"}, "reason": {"type": "null"}}},
                {
                    "properties": {"outcome": {"const": "failed"}, "reason": {"type": "string"}},
                    "required": ["reason"],
                },
            ]
        }
    )

    reward_id: RewardId
    attempt: Annotated[int, BeforeValidator(integral)] = Field(
        ge=1, le=1000, description="The `attempt` of the payout message."
    )
    outcome: Literal["paid", "failed"]
    reason: str | None = Field(
        default=None, min_length=1, max_length=500, description="Why it failed; with failed."
    )
    reported_at: Rfc3339 = Field(
        description="When the payout system settled the attempt: the latest failure wins."
    )

    @model_validator(mode="after")
    def _failure_has_a_reason(self) -> Self:
        if (self.outcome == "failed") != (self.reason is not None):
            raise ValueError("a failed outcome needs a reason, and only a failed one")
        return self


class RewardConfigPublic(_Compact):
    """How the reward pays: `refund` (the completing purchase) or `fixed-reward` (`amount`)."""

    type: Literal["refund", "fixed-reward"]
    amount: int | None = Field(default=None, description="fixed-reward: minor units paid.")
    max_amount: int | None = Field(default=None, description="refund: cap in minor units.")
    currency: str | None = None


class RewardDisplayPublic(_Compact):
    """How the reward reads to a member."""

    formatted: str | None = None


class DisplayContentPublic(_Compact):
    """What to show members about the program."""

    title: str
    image: str
    logo: str | None = None
    summary: str
    description: str
    terms: str
    reward: RewardDisplayPublic = RewardDisplayPublic()


class ProgramPublic(BaseModel):
    """A loyalty program members can join."""

    id: str
    name: str
    qualifying_threshold: int
    reward_config: RewardConfigPublic
    display_content: DisplayContentPublic
    status: Literal["active", "paused"] = Field(
        description="paused: listed and open to enrollment, but not stamping for now."
    )
    active_from: PublicTimestamp | None
    active_until: PublicTimestamp | None
    created_at: PublicTimestamp
    updated_at: PublicTimestamp

    @classmethod
    def of(cls, program: ProgramRecord) -> ProgramPublic:
        return cls.model_validate(vars(program))


class ProgramPage(BaseModel):
    """A page of programs."""

    data: list[ProgramPublic]
    page: PageInfo


class CollectionPublic(BaseModel):
    """A member's stamp collection in one program and its progress in the current cycle."""

    id: str
    loyalty_program_id: str
    member_id: str
    created_at: PublicTimestamp
    updated_at: PublicTimestamp
    unredeemed_purchases: int = Field(description="Stamps collected in the current cycle.")
    qualifying_threshold: int = Field(description="Stamps a cycle needs to trigger the reward.")
    owed_stamps: int = Field(
        description=(
            "Stamps owed: purchases voided after their cycle was rewarded. The reward is not "
            "clawed back; the next cycle needs this many more stamps."
        )
    )
    purchases_to_next_reward: int = Field(
        description="Stamped purchases still needed to trigger the next reward, debt included."
    )
    status: Literal["enrolled", "unenrolled"] = Field(
        description="unenrolled: the member left the program; nothing stamps it any more."
    )
    unenrolled_at: PublicTimestamp | None = Field(
        description="When the member unenrolled (`wallet.stamp-collection/delete`)."
    )

    @classmethod
    def of(cls, collection: CollectionRecord) -> CollectionPublic:
        return cls.model_validate(_collection_fields(collection))


class ProgramSummaryPublic(BaseModel):
    """The program of a collection, as a wallet shows it: no call per program needed."""

    id: str
    name: str
    status: str = Field(description="active, paused, archived or ended (a member keeps it).")
    qualifying_threshold: int
    display_content: DisplayContentPublic


class WalletCollectionPublic(CollectionPublic):
    """A collection in a list, with its program: K42's "programs ... along with progress"."""

    loyalty_program: ProgramSummaryPublic

    @classmethod
    def of_entry(cls, entry: WalletEntry) -> WalletCollectionPublic:
        fields = _collection_fields(entry.collection)
        return cls.model_validate({**fields, "loyalty_program": vars(entry.program)})


def _collection_fields(collection: CollectionRecord) -> dict[str, Any]:
    return {
        **vars(collection),
        "loyalty_program_id": collection.program_id,
        "purchases_to_next_reward": collection.purchases_to_next_reward,
        "status": "enrolled" if collection.unenrolled_at is None else "unenrolled",
    }


class CollectionPage(BaseModel):
    """A page of collections, each with its program."""

    data: list[WalletCollectionPublic]
    page: PageInfo


class MerchantPublic(BaseModel):
    """Where the purchase was made."""

    id: str
    name: str


class StampPublic(BaseModel):
    """A purchase that stamped the collection, and its void if the purchase was undone."""

    purchase_id: str
    transaction_id: str = Field(description="The transaction event that made the stamp.")
    cycle: int = Field(description="The reward cycle the stamp counted towards.")
    amount: int = Field(description="Purchase amount in minor units.")
    currency: str
    merchant: MerchantPublic
    occurred_at: PublicTimestamp
    stamped_at: PublicTimestamp
    status: Literal["stamped", "capped", "voided"] = Field(
        description="`capped`: the purchase qualified on a day whose cap was reached; it counts "
        "if a stamp of that day is voided."
    )
    voided_at: PublicTimestamp | None
    void_transaction_id: str | None = Field(description="The refund or reversal that voided it.")

    @classmethod
    def of(cls, stamp: StampRecord) -> StampPublic:
        return cls(
            **{name: getattr(stamp, name) for name in _STAMP_FIELDS},
            merchant=MerchantPublic(id=stamp.merchant_id, name=stamp.merchant_name),
            stamped_at=stamp.created_at,
            status="stamped" if stamp.status == "live" else stamp.status,
        )


_STAMP_FIELDS = (
    "purchase_id",
    "transaction_id",
    "cycle",
    "amount",
    "currency",
    "occurred_at",
    "voided_at",
    "void_transaction_id",
)


class StampPage(BaseModel):
    """A page of a collection's stamp history."""

    data: list[StampPublic]
    page: PageInfo


class RewardPublic(BaseModel):
    """A reward triggered when a collection completed a cycle."""

    id: str
    stamp_collection_id: str
    loyalty_program_id: str
    member_id: str
    cycle: int
    type: Literal["refund", "fixed-reward"]
    amount: int = Field(description="Paid in minor units of `currency`.")
    currency: str
    transaction_id: str | None = Field(
        description="The transaction event of the purchase it pays for; null for a cycle a "
        "program edit completed with no purchase left to pay back."
    )
    purchase_id: str | None
    created_at: PublicTimestamp
    payout_published_at: PublicTimestamp | None = Field(
        description="When the payout message went onto the payouts topic; null until then."
    )
    payout_status: Literal["triggered", "paid", "failed"] = Field(
        description="triggered until the payout system reports the payout paid or failed."
    )
    payout_attempt: int = Field(description="The payout attempt under way; a retry adds one.")
    payout_reason: str | None = Field(description="Why the payout failed.")
    payout_reported_at: PublicTimestamp | None = Field(
        description="When the payout system settled the payout, as it reported."
    )

    @classmethod
    def of(cls, reward: RewardRecord) -> RewardPublic:
        names = {"collection_id": "stamp_collection_id", "program_id": "loyalty_program_id"}
        return cls.model_validate({names.get(k, k): v for k, v in vars(reward).items()})


class RewardPage(BaseModel):
    """A page of rewards."""

    data: list[RewardPublic]
    page: PageInfo
