"""`webhook-endpoint/*` and `webhook-message/redeliver`: where signed events go, and their record.

Reading needs a `read` key; anything that changes where events go, or sends them again,
needs an `admin` key. The URL policy (https, public addresses) lives with the dispatcher, so
the router is built with it: `webhook_router(check_url, secret_grace)`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from ledger import webhook_deliveries as deliveries
from ledger import webhook_endpoints as endpoints
from ledger.database import transaction
from ledger.events import EventType
from ledger.keys import ApiKeyRecord, Scope
from ledger.webhook_deliveries import AttemptRecord, DeliveryRecord
from ledger.webhook_endpoints import EndpointRecord, UrlCheck
from publisher_api import pagination
from publisher_api.auth import require
from publisher_api.docs import ok_with_rate_limit, responses
from publisher_api.pagination import PageInfo, Pagination
from publisher_api.schemas import Timestamp
from publisher_api.state import Database

EndpointId = Annotated[str, Field(pattern=r"^ep_[A-Z2-7]+$", max_length=40)]
MessageId = Annotated[str, Field(pattern=r"^msg_[A-Z2-7]+$", max_length=40)]
Reader = Annotated[ApiKeyRecord, Depends(require(Scope.READ))]
Admin = Annotated[ApiKeyRecord, Depends(require(Scope.ADMIN))]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class WebhookEndpointCreate(_Request):
    """A URL and the event types it wants."""

    url: str = Field(max_length=endpoints.MAX_URL_CHARS, examples=["https://hooks.example.com/k42"])
    event_types: list[EventType] = Field(min_length=1, max_length=10)
    description: str = Field(default="", max_length=endpoints.MAX_DESCRIPTION_CHARS)


class WebhookEndpointRequest(_Request):
    """Names one endpoint."""

    id: EndpointId


class WebhookEndpointListRequest(_Request):
    pagination: Pagination = Field(default_factory=Pagination)


class WebhookDeliveryListRequest(_Request):
    endpoint_id: EndpointId
    status: Literal["pending", "delivered", "dead", "endpoint_disabled"] | None = None
    pagination: Pagination = Field(default_factory=Pagination)


class WebhookRedeliverRequest(_Request):
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
    disabled_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, endpoint: EndpointRecord) -> WebhookEndpointPublic:
        return cls.model_validate({**vars(endpoint), "enabled": endpoint.enabled})


class WebhookEndpointWithSecret(WebhookEndpointPublic):
    secret: str = Field(description="`whsec_...`: verify signatures with it; shown only now.")


class WebhookEndpointPage(BaseModel):
    data: list[WebhookEndpointPublic]
    page: PageInfo


class WebhookAttemptPublic(BaseModel):
    """One HTTP attempt: the status code or the error, the latency, the start of the answer."""

    attempted_at: Timestamp
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
    next_attempt_at: Timestamp | None = Field(description="Set while the delivery is pending.")
    created_at: Timestamp
    updated_at: Timestamp
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


def webhook_router(check_url: UrlCheck, secret_grace: timedelta) -> APIRouter:
    """The routes, refusing endpoint URLs that `check_url` refuses (400 `invalid_request`)."""
    router = APIRouter(prefix="/publisher.v1", tags=["webhooks"])
    _endpoint_routes(router, check_url, secret_grace)
    _state_routes(router)
    _delivery_routes(router)
    return router


def _endpoint_routes(router: APIRouter, check_url: UrlCheck, secret_grace: timedelta) -> None:
    @router.post(
        "/webhook-endpoint/create",
        summary="Register a webhook endpoint",
        response_model=WebhookEndpointWithSecret,
        responses={**ok_with_rate_limit(), **responses()},
    )
    async def create_webhook_endpoint(
        body: WebhookEndpointCreate, db: Database, _: Admin
    ) -> WebhookEndpointWithSecret:
        """Needs an `admin` key. The URL must be https to a public address; only later events."""
        async with transaction(db) as conn:
            created = await endpoints.create_endpoint(
                conn,
                url=body.url,
                event_types=body.event_types,
                description=body.description,
                check_url=check_url,
            )
        return _with_secret(created)

    @router.post(
        "/webhook-endpoint/rotate-secret",
        summary="Rotate an endpoint's signing secret",
        response_model=WebhookEndpointWithSecret,
        responses={**ok_with_rate_limit(), **responses(404)},
    )
    async def rotate_webhook_secret(
        body: WebhookEndpointRequest, db: Database, _: Admin
    ) -> WebhookEndpointWithSecret:
        """The new secret signs at once; the old one also signs during the grace period."""
        async with transaction(db) as conn:
            rotated = await endpoints.rotate_secret(conn, body.id, _now(), secret_grace)
        return _with_secret(rotated)

    @router.post(
        "/webhook-endpoint/list",
        summary="List webhook endpoints",
        response_model=WebhookEndpointPage,
        responses={**ok_with_rate_limit(), **responses()},
    )
    async def list_webhook_endpoints(
        body: WebhookEndpointListRequest, db: Database, _: Reader
    ) -> WebhookEndpointPage:
        """Every endpoint not deleted, oldest first."""
        limit = body.pagination.limit
        after = pagination.decode("webhook-endpoints", body.pagination.cursor)
        async with transaction(db) as conn:
            page = await endpoints.list_endpoints(conn, limit, after)
        data = [WebhookEndpointPublic.of(endpoint) for endpoint in page.items]
        info = pagination.page_info("webhook-endpoints", page, limit)
        return WebhookEndpointPage(data=data, page=info)

    @router.post(
        "/webhook-endpoint/get",
        summary="Read a webhook endpoint",
        response_model=WebhookEndpointPublic,
        responses={**ok_with_rate_limit(), **responses(404)},
    )
    async def get_webhook_endpoint(
        body: WebhookEndpointRequest, db: Database, _: Reader
    ) -> WebhookEndpointPublic:
        """An endpoint by id (its secret is not shown)."""
        async with transaction(db) as conn:
            return WebhookEndpointPublic.of(await endpoints.get_endpoint(conn, body.id))


def _state_routes(router: APIRouter) -> None:
    @router.post(
        "/webhook-endpoint/disable",
        summary="Stop sending to an endpoint",
        response_model=WebhookEndpointPublic,
        responses={**ok_with_rate_limit(), **responses(404)},
    )
    async def disable_webhook_endpoint(
        body: WebhookEndpointRequest, db: Database, _: Admin
    ) -> WebhookEndpointPublic:
        """Its pending deliveries end as `endpoint_disabled`; redeliver them after enabling."""
        async with transaction(db) as conn:
            return WebhookEndpointPublic.of(await endpoints.disable_endpoint(conn, body.id, _now()))

    @router.post(
        "/webhook-endpoint/enable",
        summary="Send to an endpoint again",
        response_model=WebhookEndpointPublic,
        responses={**ok_with_rate_limit(), **responses(404)},
    )
    async def enable_webhook_endpoint(
        body: WebhookEndpointRequest, db: Database, _: Admin
    ) -> WebhookEndpointPublic:
        """Events written from now on reach it again."""
        async with transaction(db) as conn:
            return WebhookEndpointPublic.of(await endpoints.enable_endpoint(conn, body.id, _now()))

    @router.post(
        "/webhook-endpoint/delete",
        summary="Delete a webhook endpoint",
        response_model=WebhookEndpointDeleted,
        responses={**ok_with_rate_limit(), **responses(404)},
    )
    async def delete_webhook_endpoint(
        body: WebhookEndpointRequest, db: Database, _: Admin
    ) -> WebhookEndpointDeleted:
        """Nothing more is sent to it; its deliveries and attempts stay on record."""
        async with transaction(db) as conn:
            await endpoints.delete_endpoint(conn, body.id, _now())
        return WebhookEndpointDeleted(id=body.id)


def _delivery_routes(router: APIRouter) -> None:
    @router.post(
        "/webhook-endpoint/deliveries",
        summary="List an endpoint's deliveries and their attempts",
        response_model=WebhookDeliveryPage,
        responses={**ok_with_rate_limit(), **responses(404)},
    )
    async def list_webhook_deliveries(
        body: WebhookDeliveryListRequest, db: Database, _: Reader
    ) -> WebhookDeliveryPage:
        """Oldest first, optionally only those in one `status`."""
        limit = body.pagination.limit
        after = pagination.decode("webhook-deliveries", body.pagination.cursor, int)
        async with transaction(db) as conn:
            page = await deliveries.list_deliveries(
                conn, body.endpoint_id, limit, after, body.status
            )
        data = [WebhookDeliveryPublic.of(delivery) for delivery in page.items]
        info = pagination.page_info("webhook-deliveries", page, limit)
        return WebhookDeliveryPage(data=data, page=info)

    @router.post(
        "/webhook-message/redeliver",
        summary="Send a message again",
        response_model=WebhookRedelivered,
        responses={**ok_with_rate_limit(), **responses(404)},
    )
    async def redeliver_webhook_message(
        body: WebhookRedeliverRequest, db: Database, _: Admin
    ) -> WebhookRedelivered:
        """Same `webhook-id` and body, a new attempt chain; deliveries still pending are left."""
        async with transaction(db) as conn:
            count = await deliveries.redeliver_message(
                conn, body.message_id, _now(), body.endpoint_id
            )
        return WebhookRedelivered(message_id=body.message_id, deliveries=count)


def _now() -> datetime:
    return datetime.now(UTC)


def _with_secret(created: endpoints.EndpointWithSecret) -> WebhookEndpointWithSecret:
    public = WebhookEndpointPublic.of(created.endpoint)
    return WebhookEndpointWithSecret(**public.model_dump(), secret=created.secret)
