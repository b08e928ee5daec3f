"""The bodies of `member/erase`: which member to erase, and what erasing changed."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ledger.erasure import Erasure
from publisher_api.schemas import MemberId, StrictRequest


class MemberErase(StrictRequest):
    """The member whose identifiers the ledger replaces by a pseudonym."""

    member_id: MemberId


class ErasedRows(BaseModel):
    """Rows this call changed, by kind: all 0 when the member was erased before."""

    collections: int
    stamps: int = Field(description="Stamps whose merchant was cleared.")
    purchase_events: int
    undos: int
    member_tokens: int = Field(description="Member tokens revoked and renamed.")
    idempotent_requests: int
    dead_letters: int
    webhook_messages: int = Field(description="Outbox messages not sent yet, rewritten.")


class MemberErased(BaseModel):
    """The member's pseudonym, the same on every call, and what this call changed."""

    pseudonym: str = Field(
        description="What the ledger now holds in place of the member id: its collections, "
        "stamps and rewards stay readable under it.",
        examples=["erased_3f9a0c1b7d2e4f6a8b0c1d2e3f4a5b6c"],
    )
    changed: ErasedRows

    @classmethod
    def of(cls, erasure: Erasure) -> MemberErased:
        return cls(pseudonym=erasure.pseudonym, changed=ErasedRows(**erasure.counts()))
