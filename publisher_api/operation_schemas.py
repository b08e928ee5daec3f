"""Wire models of the operations feed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ledger.operations import Operation
from publisher_api.pagination import PageInfo, Pagination
from publisher_api.schemas import (
    MemberId,
    PublicProgramId,
    PublicTimestamp,
    Rfc3339,
    StrictRequest,
)


class OperationListRequest(StrictRequest):
    """Which operations to list: all, or a program's, a member's, within [from, to).

    A range that holds nothing (`from` not before `to`) lists nothing."""

    model_config = ConfigDict(populate_by_name=False)

    loyalty_program_id: PublicProgramId | None = None
    member_id: MemberId | None = None
    from_: Rfc3339 | None = Field(
        default=None, alias="from", description="Recorded at or after (RFC 3339)."
    )
    to: Rfc3339 | None = Field(default=None, description="Recorded before (RFC 3339).")
    pagination: Pagination = Pagination()


class OperationPublic(BaseModel):
    """A stamp, void, adjustment or reward; fields of other kinds are null."""

    kind: Literal["stamp", "void", "adjustment", "reward"]
    id: str = Field(
        description="Of the stamp (a void has its stamp's), the adjustment or the reward."
    )
    recorded_at: PublicTimestamp = Field(
        description="When the stamp was made, the stamp voided, the adjustment or reward made."
    )
    stamp_collection_id: str
    loyalty_program_id: str
    member_id: str
    purchase_id: str | None = Field(description="Stamps and voids: the purchase.")
    transaction_id: str | None = Field(
        description="Stamps and voids: the event that stamped; rewards: the purchase paid for."
    )
    amount: int | None = Field(description="Purchase amount, or the reward's, in minor units.")
    currency: str | None
    cycle: int | None = Field(description="The cycle stamped, rewarded, or reached after it.")
    void_transaction_id: str | None = Field(description="Voids: the refund or reversal.")
    reward_type: Literal["refund", "fixed-reward"] | None
    delta: int | None = Field(description="Adjustments: stamps added (or taken away, < 0).")
    reason: str | None = Field(description="Adjustments: why.")
    made_with_key: str | None = Field(description="Adjustments: the API key; null from the CLI.")

    @classmethod
    def of(cls, op: Operation) -> OperationPublic:
        return cls(
            kind=op.kind,
            id=op.id,
            recorded_at=op.at,
            stamp_collection_id=op.collection_id,
            loyalty_program_id=op.program_id,
            member_id=op.member_id,
            purchase_id=op.purchase_id,
            transaction_id=op.transaction_id,
            amount=op.amount,
            currency=op.currency,
            cycle=op.cycle,
            void_transaction_id=op.void_transaction_id,
            reward_type=op.reward_type,
            delta=op.delta,
            reason=op.reason,
            made_with_key=op.api_key_id,
        )


class OperationPage(BaseModel):
    """A page of the operations feed, newest first."""

    data: list[OperationPublic]
    page: PageInfo
