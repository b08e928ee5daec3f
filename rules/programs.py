"""A loyalty program definition, as ops files hold it and the database stores it."""

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, model_validator

from rules.errors import FieldProblem
from rules.fields import Currency, LongText, Name, Timestamp
from rules.qualifying import Amount, QualifyingRules


def _program_id(value: str) -> str:
    if not value.startswith("lp_") or not value[3:] or not _ID_CHARS.issuperset(value[3:]):
        raise ValueError(f"{value[:40]!r} must be lp_ followed by letters, digits, _ or -")
    if len(value) > 64:
        raise ValueError("must be at most 64 characters")
    return value


_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

ProgramId = Annotated[str, AfterValidator(_program_id)]


class _Definition(BaseModel):
    # Unknown keys are refused: a misspelt rule silently ignored would widen a program.
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProgramStatus(StrEnum):
    """Whether a program is stamping now."""

    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class RefundReward(_Definition):
    """Pays back the amount of the purchase that completes a cycle, capped by ``max_amount``."""

    type: Literal["refund"] = "refund"
    max_amount: Amount | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _cap_has_currency(self) -> Self:
        if self.max_amount is not None and self.currency is None:
            raise FieldProblem("currency", "is required with max_amount (its minor units)")
        return self


class FixedReward(_Definition):
    """Pays a fixed amount, in minor units of ``currency``, when a cycle completes."""

    type: Literal["fixed-reward"] = "fixed-reward"
    amount: Amount
    currency: Currency


RewardConfig = Annotated[RefundReward | FixedReward, Field(discriminator="type")]


class RewardDisplay(_Definition):
    """How the reward reads to a member, such as "Your 6th coffee free"."""

    formatted: Name | None = None


class DisplayContent(_Definition):
    """What a publisher shows its members about the program."""

    title: Name
    image: Name
    logo: Name | None = None
    summary: LongText
    description: LongText
    terms: LongText
    reward: RewardDisplay = RewardDisplay()


class ProgramDefinition(_Definition):
    """A loyalty program: its reward, what members see, and which purchases stamp it.

    The program is live from ``active_from`` (inclusive) until ``active_until`` (exclusive)
    while its status is active; either end may be left open.
    """

    id: ProgramId
    name: Name
    qualifying_threshold: Annotated[StrictInt, Field(ge=1)]
    reward_config: RewardConfig
    display_content: DisplayContent
    # Required even though every condition is optional: {} (any purchase) must be deliberate.
    rules: QualifyingRules
    status: ProgramStatus = ProgramStatus.ACTIVE
    active_from: Timestamp | None = None
    active_until: Timestamp | None = None
    version: Annotated[StrictInt, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _window_is_ordered(self) -> Self:
        start, end = self.active_from, self.active_until
        if start is not None and end is not None and start >= end:
            raise FieldProblem("active_until", f"{end.isoformat()} is not after active_from")
        return self

    @model_validator(mode="after")
    def _refund_cap_in_the_purchase_currency(self) -> Self:
        # A cap counts minor units of one currency: applied to a purchase in another, it
        # would pay 5000 KRW's worth of cap as 50 EUR. So the rules must rule that out.
        config = self.reward_config
        if not isinstance(config, RefundReward) or config.max_amount is None:
            return self
        if self.rules.currencies != (config.currency,):
            raise FieldProblem(
                "reward_config.max_amount",
                f"is in {config.currency}, so rules.currencies must be [{config.currency}]: "
                "a capped refund cannot be paid for a purchase in another currency",
            )
        return self
