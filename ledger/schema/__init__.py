"""The ledger's PostgreSQL tables, by subject; importing this module declares them all."""

from ledger.schema.base import NAMING, Base, Json
from ledger.schema.collections import (
    DeadLetter,
    ErasedMember,
    PurchaseEvent,
    Reward,
    Stamp,
    StampAdjustment,
    StampCollection,
    Undo,
)
from ledger.schema.console import ConsoleSession, ConsumerLag, FlowMinute, ReconciliationRun
from ledger.schema.keys import (
    ApiKey,
    ApiRateBucket,
    IdempotentRequest,
    IngestedTransaction,
    IngestSignature,
)
from ledger.schema.programs import Program, ProgramRevision, ProgramVersion
from ledger.schema.webhooks import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)

__all__ = [
    "NAMING",
    "ApiKey",
    "ApiRateBucket",
    "Base",
    "ConsoleSession",
    "ConsumerLag",
    "DeadLetter",
    "ErasedMember",
    "FlowMinute",
    "IdempotentRequest",
    "IngestSignature",
    "IngestedTransaction",
    "Json",
    "Program",
    "ProgramRevision",
    "ProgramVersion",
    "PurchaseEvent",
    "ReconciliationRun",
    "Reward",
    "Stamp",
    "StampAdjustment",
    "StampCollection",
    "Undo",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookMessage",
]
