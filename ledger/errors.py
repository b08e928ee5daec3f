"""The error tree of autostamp.

    AutostampError
    ├── InfrastructureError       the infrastructure failed: retried, then the process stops
    │   │                         without acknowledging anything (never a dead letter)
    │   ├── StorageError          the database failed                        (API 503)
    │   │   ├── StorageUnavailable    it may heal: connection lost, pool exhausted,
    │   │   │                         deadlock, serialization failure, shutdown
    │   │   └── StorageRefused        an operator must act: read-only server, permission
    │   │                             denied, schema behind the code, disk full
    │   └── BrokerError           Kafka failed
    │       ├── BrokerUnavailable     it may heal: not reachable, timed out
    │       └── BrokerRefused         an operator must act: unknown topic, not authorized
    ├── DataRefused               the database refused a value: the event carrying it is
    │   │                         bad, and goes to the dead letters with this reason
    │   └── ledger.programs.ProgramVersionReused   the version of a program the ledger
    │                                 holds, again with other content: never applied
    ├── EmbeddedServiceError      the embedded PostgreSQL or broker would not start
    ├── SecretKeyError            AUTOSTAMP_SECRET_KEY cannot seal or open webhook secrets:
    │   │                         a key is malformed; an operator must act
    │   ├── SecretKeyMissing      no key is set, or not the one a stored secret was sealed under
    │   └── SecretUnreadable      a sealed secret was altered, or copied from another row
    ├── autostamp.wiring.SettingRequired   a setting the process needs is unset or unusable:
    │                                      it does not start, and says what to set
    ├── autostamp.demo_stack.DemoError     `autostamp demo` cannot go on: its stack did not
    │                                      come up or stopped, or the API refused it
    ├── NotFound                  an id names nothing the caller may see      (API 404)
    ├── AdjustmentRefused         an adjustment the stamping rules cannot make (API 409)
    ├── AlreadyExists             a unique thing was created twice            (API 409)
    │   ├── DuplicateEnrollment   the member is already enrolled in the program
    │   ├── MemberErased          the member id was erased: it enrolls no more
    │   └── ledger.payouts.PayoutNotRetryable   only a failed payout is retried
    ├── AuthError                 missing, unknown, revoked or expired key    (API 401)
    │   └── RequestSignatureRefused   a signed key's request is unsigned, stale,
    │                                 wrongly signed or replayed              (API 401)
    ├── ScopeError                the key may not do this                     (API 403)
    ├── OriginRefused             a browser used a key from a refused origin  (API 403)
    ├── OtherMemberRefused        a member token named another member         (API 403)
    ├── ledger.idempotency.IdempotencyKeyReused   a key came with another body (API 422)
    ├── UnsafeUrl                 a webhook URL points into a refused network (API 400)
    ├── publisher_api.errors.InvalidRequest   a body or parameter is refused   (API 400)
    ├── publisher_api.ratelimit.RateLimited   the key spent its bucket         (API 429)
    ├── publisher_api.failed_auth.TooManyFailedAuthentications   an address failed to
    │                                         authenticate too often           (API 429)
    ├── streams.service.RepeatedFailure       several events of one chunk failed alone,
    │                                         not for their data: the worker stops (70)
    ├── streams.program_signing.ProgramSignatureError   a program definition not signed by a
    │   │                                 key we hold: dead-lettered, never applied
    │   ├── UnsignedProgram       no signature, or one that cannot be read
    │   ├── UnknownSigningKey     signed with a key not (or no longer) held
    │   └── ProgramSignatureMismatch   the signature does not match its key and value
    └── webhooks.signing.WebhookVerificationError   a webhook failed verification
        ├── MalformedWebhook      headers missing or not in the Standard Webhooks form
        ├── StaleTimestamp        signed too long ago, or in the future
        └── SignatureMismatch     no signature matches the secret and body

Each class lives here unless the tree names its module: there, beside what raises it.
`tests/test_error_tree.py` checks this drawing against the classes.

Input that fails validation is a `ValueError` where it is found (pydantic's
`ValidationError`, `rules.InvalidTransaction`, `rules.ProgramFileError`): the entry points
turn it into a dead-letter record or a 400, never a crash. Adapters wrap driver errors with
`raise ... from exc`: `ledger.failures` classifies the database's, `streams.kafka` the
broker's.
"""

from __future__ import annotations


class AutostampError(Exception):
    """Root of every error autostamp raises on purpose."""


class InfrastructureError(AutostampError):
    """A service we depend on failed; `hint` says what an operator can do about it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    @property
    def transient(self) -> bool:
        """Whether waiting may be enough (else an operator must act)."""
        return True


class StorageError(InfrastructureError):
    """The database could not do what was asked."""


class StorageUnavailable(StorageError):
    """The database failed in a way that may heal by itself; the work may be retried as is."""


class StorageRefused(StorageError):
    """The database refuses the work until an operator acts (see `hint`)."""

    @property
    def transient(self) -> bool:
        return False


class BrokerError(InfrastructureError):
    """The Kafka broker could not do what was asked."""


class BrokerUnavailable(BrokerError):
    """The broker could not be reached in time; the work may be retried as is."""


class BrokerRefused(BrokerError):
    """The broker refuses the work until an operator acts (see `hint`)."""

    @property
    def transient(self) -> bool:
        return False


class DataRefused(AutostampError):
    """The database refused a value of the data itself (out of range, NUL byte, a check)."""


class EmbeddedServiceError(AutostampError):
    """An embedded service would not start or stop."""


class SecretKeyError(AutostampError):
    """The keys that seal webhook secrets at rest are missing, malformed or wrong."""


class SecretKeyMissing(SecretKeyError):
    """No key is configured, or none of those configured sealed the value being opened."""


class SecretUnreadable(SecretKeyError):
    """A sealed value does not open under its key: altered, or copied from another row."""


class NotFound(AutostampError):
    """An id names nothing the caller may see."""

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"{kind} {id!r} was not found")
        self.kind = kind
        self.id = id


class AdjustmentRefused(AutostampError):
    """An adjustment the stamping rules cannot make: a reward with no purchase to pay for."""


class AlreadyExists(AutostampError):
    """Something unique was created a second time."""


class MemberErased(AlreadyExists):
    """The member id was erased. Its later events act on the renamed rows, so a collection
    made under it again would never stamp: the member enrolls under a new id."""

    def __init__(self) -> None:
        super().__init__("this member was erased: enroll them under a new member id")


class DuplicateEnrollment(AlreadyExists):
    """The member already has a collection in this program."""

    def __init__(self, program_id: str, member_id: str, collection_id: str) -> None:
        # The member is named in the answer's details, never in the message (which is logged).
        super().__init__(f"the member is already enrolled in {program_id!r} ({collection_id})")
        self.program_id = program_id
        self.member_id = member_id
        self.collection_id = collection_id


class AuthError(AutostampError):
    """The request carries no valid API key."""


class RequestSignatureRefused(AuthError):
    """A request made with a signing key is unsigned, outside the window, wrong or replayed."""


class OriginRefused(AutostampError):
    """A browser used a key from an origin the key does not allow."""


class OtherMemberRefused(AutostampError):
    """A member token asked for the data of a member other than its own."""

    def __init__(self) -> None:
        super().__init__("a member token reads its own member's data only")


class ScopeError(AutostampError):
    """The API key is valid but may not make this call."""

    def __init__(self, needed: str, held: str) -> None:
        super().__init__(f"this call needs a {needed!r} key; the key used is {held!r}")
        self.needed = needed
        self.held = held


class UnsafeUrl(AutostampError):
    """A webhook URL resolves into a network we refuse to call."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
