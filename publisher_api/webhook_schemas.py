"""The bodies of the webhook calls: endpoints, their deliveries and attempts, redelivery."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from ledger import webhook_endpoints as endpoints
from ledger.events import EVENT_TYPES, EventType
from ledger.webhook_deliveries import AttemptRecord, DeliveryRecord
from ledger.webhook_endpoints import EndpointRecord
from publisher_api.pagination import PageInfo, Pagination
from publisher_api.schemas import PublicTimestamp, StrictRequest, utf8

EndpointId = Annotated[str, Field(pattern=r"^ep_[A-Z2-7]+$", max_length=40)]
# Text the database can store: no NUL, no lone surrogate (a "\ud800" escape in the JSON).
EndpointUrl = Annotated[
    str,
    Field(
        max_length=endpoints.MAX_URL_CHARS,
        pattern=r"^[^\x00-\x20\x7f]+$",
        examples=["https://hooks.example.com/k42"],
    ),
    AfterValidator(utf8),
]
Description = Annotated[
    str,
    Field(max_length=endpoints.MAX_DESCRIPTION_CHARS, pattern=r"^[^\x00]*$"),
    AfterValidator(utf8),
]
MessageId = Annotated[str, Field(pattern=r"^msg_[A-Z2-7]+$", max_length=40)]


class WebhookEndpointCreate(StrictRequest):
    """A URL and the event types it wants."""

    url: EndpointUrl
    event_types: list[EventType] = Field(
        default_factory=lambda: list(EVENT_TYPES),
        min_length=1,
        max_length=10,
        description="The event types to deliver; every type when left out.",
    )
    description: Description = ""


class WebhookEndpointRequest(StrictRequest):
    """Names one endpoint."""

    id: EndpointId


class WebhookEndpointListRequest(StrictRequest):
    pagination: Pagination = Field(default_factory=Pagination)


class WebhookDeliveryListRequest(StrictRequest):
    endpoint_id: EndpointId
    status: Literal["pending", "delivered", "dead", "endpoint_disabled"] | None = None
    pagination: Pagination = Field(default_factory=Pagination)


class WebhookRedeliverRequest(StrictRequest):
    """A message to send again, to every endpoint that had it or to one."""

    message_id: MessageId
    endpoint_id: EndpointId | None = None


class WebhookEndpointPublic(BaseModel):
    """An endpoint; its secret is shown only when created or rotated."""

    id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_at: PublicTimestamp | None
    disabled_reason: str | None = Field(
        description="Why it was disabled: `410 Gone`, `failing since <time>` (five days "
        "without a success, by default), or `disabled by request`.",
        examples=["failing since 2024-05-01T12:00:00Z"],
    )
    failing_since: PublicTimestamp | None = Field(
        description="When its current run of failed attempts began; unset after a success."
    )
    created_at: PublicTimestamp
    updated_at: PublicTimestamp

    @classmethod
    def of(cls, endpoint: EndpointRecord) -> WebhookEndpointPublic:
        return cls.model_validate({**vars(endpoint), "enabled": endpoint.enabled})


class WebhookEndpointWithSecret(WebhookEndpointPublic):
    secret: str = Field(
        description="`whsec_...`: verify signatures with it; shown only now.", repr=False
    )


class WebhookEndpointPage(BaseModel):
    data: list[WebhookEndpointPublic]
    page: PageInfo


class WebhookAttemptPublic(BaseModel):
    """One HTTP attempt: the status code or the error, the latency, the start of the answer."""

    attempted_at: PublicTimestamp
    status_code: int | None
    latency_ms: int
    error: str | None
    response_snippet: str | None

    @classmethod
    def of(cls, attempt: AttemptRecord) -> WebhookAttemptPublic:
        return cls.model_validate(vars(attempt))


class WebhookDeliveryPublic(BaseModel):
    """One message to one endpoint; `attempts` counts the current chain, `history` every try."""

    id: int
    message_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: PublicTimestamp | None = Field(
        description="Set while the delivery is pending."
    )
    created_at: PublicTimestamp
    updated_at: PublicTimestamp
    history: list[WebhookAttemptPublic]

    @classmethod
    def of(cls, delivery: DeliveryRecord) -> WebhookDeliveryPublic:
        pending = delivery.status == "pending"
        return cls.model_validate(
            {
                **vars(delivery),
                "next_attempt_at": delivery.next_attempt_at if pending else None,
                "history": [WebhookAttemptPublic.of(a) for a in delivery.history],
            }
        )


class WebhookDeliveryPage(BaseModel):
    data: list[WebhookDeliveryPublic]
    page: PageInfo


class WebhookEndpointDeleted(BaseModel):
    id: str
    deleted: Literal[True] = True


class WebhookRedelivered(BaseModel):
    message_id: str
    deliveries: int = Field(description="Deliveries that start a new attempt chain.")
