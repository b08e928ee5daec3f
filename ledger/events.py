"""The webhook events the ledger announces, and their exact bodies: pure, no I/O.

The payload of each event type, with an example, is in `docs/webhooks.md`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import orjson

# Standard Webhooks asks for small payloads; every field below is bounded to stay under it.
MAX_BODY_BYTES = 20_000
MERCHANT_NAME_CHARS = 200

EventType = Literal[
    "stamp.collected",
    "stamp.voided",
    "reward.triggered",
    "stamp_collection.created",
    "stamp_collection.deleted",
    "reward.paid",
    "reward.failed",
    "stamp.adjusted",
]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)


@dataclass(frozen=True, kw_only=True, slots=True)
class CollectionRef:
    """The stamp collection an event is about."""

    collection_id: str
    program_id: str
    member_id: str
    qualifying_threshold: int


@dataclass(frozen=True, kw_only=True, slots=True)
class PurchaseRef:
    """The card transaction behind an event, as a webhook consumer sees it."""

    transaction_id: str
    purchase_id: str
    amount: int
    currency: str
    merchant_id: str
    merchant_name: str
    occurred_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class StampCollected:
    """A purchase stamped a collection; `unredeemed_purchases` is the count after it."""

    timestamp: datetime
    collection: CollectionRef
    purchase: PurchaseRef
    cycle: int
    unredeemed_purchases: int


@dataclass(frozen=True, kw_only=True, slots=True)
class StampVoided:
    """A refund or reversal voided the stamp of `purchase_id`."""

    timestamp: datetime
    collection: CollectionRef
    purchase_id: str
    voided_by_transaction_id: str
    voided_by_type: str
    unredeemed_purchases: int


@dataclass(frozen=True, kw_only=True, slots=True)
class StampAdjusted:
    """Support staff added (`delta` > 0) or took away stamps; the counters are those after it."""

    timestamp: datetime
    collection: CollectionRef
    adjustment_id: str
    delta: int
    reason: str
    cycle: int
    unredeemed_purchases: int
    owed_stamps: int


@dataclass(frozen=True, kw_only=True, slots=True)
class RewardTriggered:
    """A collection completed a cycle; `purchase` is the transaction it pays for (None for a
    cycle an edit completed with nothing left to pay back)."""

    timestamp: datetime
    collection: CollectionRef
    reward_id: str
    type: str
    amount: int
    currency: str
    cycle: int
    purchase: PurchaseRef | None


@dataclass(frozen=True, kw_only=True, slots=True)
class StampCollectionCreated:
    """A member enrolled in a program."""

    timestamp: datetime
    collection: CollectionRef


@dataclass(frozen=True, kw_only=True, slots=True)
class StampCollectionDeleted:
    """A member unenrolled: the collection stamps nothing from `timestamp` on; its history stays."""

    timestamp: datetime
    collection: CollectionRef


@dataclass(frozen=True, kw_only=True, slots=True)
class RewardSettled:
    """The payout system reported a reward's payout paid, or failed (with its reason)."""

    timestamp: datetime
    collection: CollectionRef
    reward_id: str
    type: str
    amount: int
    currency: str
    cycle: int
    paid: bool
    attempt: int
    reason: str | None


OutboxEvent = (
    StampCollected
    | StampVoided
    | RewardTriggered
    | StampCollectionCreated
    | StampCollectionDeleted
    | RewardSettled
    | StampAdjusted
)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An event ready for the outbox: its stable id (the `webhook-id`) and the exact body."""

    id: str
    event_type: str
    body: str


class OversizedEvent(ValueError):
    """An event whose body would exceed MAX_BODY_BYTES: its fields were not validated."""


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _collection(ref: CollectionRef) -> dict[str, Any]:
    return {
        "collection_id": ref.collection_id,
        "loyalty_program_id": ref.program_id,
        "member_id": ref.member_id,
        "qualifying_threshold": ref.qualifying_threshold,
    }


def _purchase(ref: PurchaseRef) -> dict[str, Any]:
    return {
        "transaction_id": ref.transaction_id,
        "purchase_id": ref.purchase_id,
        "amount": ref.amount,
        "currency": ref.currency,
        "merchant": {"id": ref.merchant_id, "name": ref.merchant_name[:MERCHANT_NAME_CHARS]},
        "occurred_at": rfc3339(ref.occurred_at),
    }


def event_type(event: OutboxEvent) -> str:
    match event:
        case StampCollected():
            return "stamp.collected"
        case StampVoided():
            return "stamp.voided"
        case RewardTriggered():
            return "reward.triggered"
        case StampCollectionCreated():
            return "stamp_collection.created"
        case StampCollectionDeleted():
            return "stamp_collection.deleted"
        case RewardSettled():
            return "reward.paid" if event.paid else "reward.failed"
        case StampAdjusted():
            return "stamp.adjusted"


def event_data(event: OutboxEvent) -> dict[str, Any]:
    """The `data` object of the event's payload."""
    data = _collection(event.collection)
    match event:
        case StampCollected():
            data["cycle"] = event.cycle
            data["unredeemed_purchases"] = event.unredeemed_purchases
            data["transaction"] = _purchase(event.purchase)
        case StampVoided():
            data["purchase_id"] = event.purchase_id
            data["voided_by"] = {
                "transaction_id": event.voided_by_transaction_id,
                "type": event.voided_by_type,
            }
            data["unredeemed_purchases"] = event.unredeemed_purchases
        case RewardTriggered():
            data["reward"] = {
                "id": event.reward_id,
                "type": event.type,
                "amount": event.amount,
                "currency": event.currency,
            }
            data["cycle"] = event.cycle
            data["transaction"] = None if event.purchase is None else _purchase(event.purchase)
        case StampCollectionCreated():
            pass
        case StampCollectionDeleted():
            data["unenrolled_at"] = rfc3339(event.timestamp)
        case RewardSettled():
            data["reward"] = {
                "id": event.reward_id,
                "type": event.type,
                "amount": event.amount,
                "currency": event.currency,
            }
            data["cycle"] = event.cycle
            data["payout"] = {"attempt": event.attempt, "reason": event.reason}
        case StampAdjusted():
            data["adjustment"] = {
                "id": event.adjustment_id,
                "delta": event.delta,
                "reason": event.reason,
            }
            data["cycle"] = event.cycle
            data["unredeemed_purchases"] = event.unredeemed_purchases
            data["owed_stamps"] = event.owed_stamps
    return data


def subject(event: OutboxEvent) -> str:
    """What the event is about, unique per event type: the same fact always gets the same id."""
    match event:
        case StampCollected():
            return f"{event.collection.collection_id}/{event.purchase.purchase_id}"
        case StampVoided():
            return f"{event.collection.collection_id}/{event.purchase_id}"
        case RewardTriggered():
            return event.reward_id
        case StampCollectionCreated() | StampCollectionDeleted():
            return event.collection.collection_id
        case RewardSettled():
            # A payout is paid once; it may fail once per attempt.
            return event.reward_id if event.paid else f"{event.reward_id}/{event.attempt}"
        case StampAdjusted():
            return event.adjustment_id


def message_id(event_type: str, subject: str) -> str:
    """A stable `msg_...` id: writing the same event twice is a no-op, not a second webhook."""
    digest = hashlib.sha256(f"{event_type}\x00{subject}".encode()).digest()
    return "msg_" + base64.b32encode(digest[:15]).decode()


def build_message(event: OutboxEvent) -> OutboxMessage:
    """The envelope `{"type", "timestamp", "data"}`, serialised once for every attempt."""
    kind = event_type(event)
    envelope = {"type": kind, "timestamp": rfc3339(event.timestamp), "data": event_data(event)}
    body = orjson.dumps(envelope)
    if len(body) > MAX_BODY_BYTES:
        raise OversizedEvent(f"{kind} body is {len(body)} bytes, above {MAX_BODY_BYTES}")
    return OutboxMessage(id=message_id(kind, subject(event)), event_type=kind, body=body.decode())
