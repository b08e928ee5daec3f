"""Wire models of adjustments by support staff."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from ledger.adjustments import AdjustmentRecord
from ledger.domain import MAX_ADJUSTMENT
from ledger.idempotency import MAX_KEY_CHARS
from ledger.thresholds import MAX_REASON_CHARS
from publisher_api.pagination import _whole_number
from publisher_api.schemas import CollectionId, PublicTimestamp, StampPage, StrictRequest, utf8


def _not_zero(value: int) -> int:
    if value == 0:
        raise ValueError("must not be 0")
    return value


class AdjustmentCreate(StrictRequest):
    """Stamps to add (a positive delta) or take away (a negative one), and why."""

    stamp_collection_id: CollectionId
    delta: Annotated[
        int,
        Field(
            ge=-MAX_ADJUSTMENT,
            le=MAX_ADJUSTMENT,
            examples=[1, -1],
            json_schema_extra={"not": {"const": 0}},
        ),
        BeforeValidator(_whole_number),
        AfterValidator(_not_zero),
    ]
    reason: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_REASON_CHARS,
            pattern=r"\S",  # not blank
            examples=["missed purchase, ticket 4312"],
        ),
        AfterValidator(utf8),
    ]
    idempotency_key: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_KEY_CHARS,
            pattern=r"^[\x21-\x7e]+$",
            description="Unique per adjustment (a ticket number, a UUID): a retry with the same "
            "key and body answers the first adjustment and changes nothing; another body, 422.",
        ),
    ]


class AdjustmentPublic(BaseModel):
    """An adjustment as made, with the collection's counters right after it."""

    id: str
    stamp_collection_id: str
    delta: int
    reason: str
    made_with_key: str | None = Field(
        description="The id of the API key that made it; null when made from the command line."
    )
    cycle: int = Field(description="The collection's reward cycle after it.")
    unredeemed_purchases: int = Field(description="The collection's count after it.")
    owed_stamps: int = Field(description="Stamps owed after it.")
    reward_ids: list[str] = Field(description="The rewards of the cycles it completed.")
    created_at: PublicTimestamp

    @classmethod
    def of(cls, record: AdjustmentRecord) -> AdjustmentPublic:
        return cls(
            id=record.id,
            stamp_collection_id=record.collection_id,
            delta=record.delta,
            reason=record.reason,
            made_with_key=record.api_key_id,
            cycle=record.cycle,
            unredeemed_purchases=record.unredeemed_purchases,
            owed_stamps=record.owed_stamps,
            reward_ids=list(record.reward_ids),
            created_at=record.created_at,
        )


class StampHistoryPage(StampPage):
    """A page of a collection's stamp history, with the adjustments made in its span."""

    adjustments: list[AdjustmentPublic] = Field(
        default_factory=list,
        description="Adjustments by support staff made after the previous page's last stamp, "
        "up to this page's last (to now on the last page), oldest first.",
    )
