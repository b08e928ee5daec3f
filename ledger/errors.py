"""The error tree of autostamp.

    AutostampError
    ├── StorageError              the database failed; transient, retried, then stops the worker
    ├── BrokerError               Kafka failed (produce, admin); transient
    ├── EmbeddedServiceError      the embedded PostgreSQL or broker would not start
    ├── NotFound                  an id names nothing the caller may see      (API 404)
    ├── AlreadyExists             a unique thing was created twice            (API 409)
    │   └── DuplicateEnrollment   the member is already enrolled in the program
    ├── AuthError                 missing, unknown, revoked or expired key    (API 401)
    ├── ScopeError                the key may not do this                     (API 403)
    ├── UnsafeUrl                 a webhook URL points into a refused network (API 400)
    └── webhooks.signing.WebhookVerificationError   a webhook failed verification
        ├── MalformedWebhook      headers missing or not in the Standard Webhooks form
        ├── StaleTimestamp        signed too long ago, or in the future
        └── SignatureMismatch     no signature matches the secret and body

Input that fails validation is a `ValueError` where it is found (pydantic's
`ValidationError`, `rules.InvalidTransaction`, `rules.ProgramFileError`): the
entry points turn it into a dead-letter record or a 400, never a crash.
Adapters wrap driver errors with `raise StorageError(...) from exc`.
"""

from __future__ import annotations


class AutostampError(Exception):
    """Root of every error autostamp raises on purpose."""


class StorageError(AutostampError):
    """The database could not do what was asked; the caller may retry."""


class BrokerError(AutostampError):
    """The Kafka broker could not do what was asked; the caller may retry."""


class EmbeddedServiceError(AutostampError):
    """An embedded service would not start or stop."""


class NotFound(AutostampError):
    """An id names nothing the caller may see."""

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"{kind} {id!r} was not found")
        self.kind = kind
        self.id = id


class AlreadyExists(AutostampError):
    """Something unique was created a second time."""


class DuplicateEnrollment(AlreadyExists):
    """The member already has a collection in this program."""

    def __init__(self, program_id: str, member_id: str, collection_id: str) -> None:
        super().__init__(
            f"member {member_id!r} is already enrolled in {program_id!r} ({collection_id})"
        )
        self.program_id = program_id
        self.member_id = member_id
        self.collection_id = collection_id


class AuthError(AutostampError):
    """The request carries no valid API key."""


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
