"""`webhook-endpoint/*` and `webhook-message/redeliver`: where signed events go, and their record.

Every call needs an `admin` key, reads included: an endpoint's URL may carry the receiver's
own credentials (a token in its query), and a delivery's record shows what the receiver
answered. They belong to the scope that may change where events go. Endpoint URLs are
checked by the dispatcher's policy (https, public addresses), which the application is
built with.
"""

from __future__ import annotations

from fastapi import APIRouter

from ledger import webhook_deliveries as deliveries
from ledger import webhook_endpoints as endpoints
from ledger.database import transaction
from publisher_api import pagination
from publisher_api.deps import (
    Admin,
    Database,
    HeldWhileDisabled,
    Now,
    SecretGrace,
    SecretKeyring,
    UrlPolicy,
)
from publisher_api.docs import ok_with_rate_limit, responses
from publisher_api.webhook_schemas import (
    WebhookDeliveryListRequest,
    WebhookDeliveryPage,
    WebhookDeliveryPublic,
    WebhookEndpointCreate,
    WebhookEndpointDeleted,
    WebhookEndpointListRequest,
    WebhookEndpointPage,
    WebhookEndpointPublic,
    WebhookEndpointRequest,
    WebhookEndpointWithSecret,
    WebhookRedelivered,
    WebhookRedeliverRequest,
)

router = APIRouter(prefix="/publisher.v1", tags=["webhooks"])


@router.post(
    "/webhook-endpoint/create",
    summary="Register a webhook endpoint",
    response_model=WebhookEndpointWithSecret,
    responses={**ok_with_rate_limit(), **responses()},
)
async def create_webhook_endpoint(
    body: WebhookEndpointCreate,
    db: Database,
    _: Admin,
    check_url: UrlPolicy,
    keyring: SecretKeyring,
) -> WebhookEndpointWithSecret:
    """Needs an `admin` key. The URL must be https to a public address; only later events."""
    async with transaction(db) as conn:
        created = await endpoints.create_endpoint(
            conn,
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            check_url=check_url,
            keyring=keyring,
        )
    return _with_secret(created)


@router.post(
    "/webhook-endpoint/rotate-secret",
    summary="Rotate an endpoint's signing secret",
    response_model=WebhookEndpointWithSecret,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def rotate_webhook_secret(
    body: WebhookEndpointRequest,
    db: Database,
    _: Admin,
    now: Now,
    grace: SecretGrace,
    keyring: SecretKeyring,
) -> WebhookEndpointWithSecret:
    """The new secret signs at once; the old one also signs during the grace period."""
    async with transaction(db) as conn:
        rotated = await endpoints.rotate_secret(conn, body.id, now, grace, keyring)
    return _with_secret(rotated)


@router.post(
    "/webhook-endpoint/list",
    summary="List webhook endpoints",
    response_model=WebhookEndpointPage,
    responses={**ok_with_rate_limit(), **responses()},
)
async def list_webhook_endpoints(
    body: WebhookEndpointListRequest, db: Database, _: Admin
) -> WebhookEndpointPage:
    """Needs an `admin` key. Every endpoint not deleted, oldest first."""
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
    body: WebhookEndpointRequest, db: Database, _: Admin
) -> WebhookEndpointPublic:
    """Needs an `admin` key. An endpoint by id (its secret is not shown)."""
    async with transaction(db) as conn:
        return WebhookEndpointPublic.of(await endpoints.get_endpoint(conn, body.id))


@router.post(
    "/webhook-endpoint/disable",
    summary="Stop sending to an endpoint",
    response_model=WebhookEndpointPublic,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def disable_webhook_endpoint(
    body: WebhookEndpointRequest, db: Database, _: Admin, now: Now
) -> WebhookEndpointPublic:
    """Its deliveries wait as `endpoint_disabled`, and new events are held for it too."""
    async with transaction(db) as conn:
        return WebhookEndpointPublic.of(await endpoints.disable_endpoint(conn, body.id, now))


@router.post(
    "/webhook-endpoint/enable",
    summary="Send to an endpoint again",
    response_model=WebhookEndpointPublic,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def enable_webhook_endpoint(
    body: WebhookEndpointRequest, db: Database, _: Admin, now: Now, held: HeldWhileDisabled
) -> WebhookEndpointPublic:
    """New events reach it again, and so do the ones held while it was disabled, up to the
    configured age (3 days by default); older ones can be redelivered."""
    async with transaction(db) as conn:
        enabled = await endpoints.enable_endpoint(conn, body.id, now, held)
    return WebhookEndpointPublic.of(enabled)


@router.post(
    "/webhook-endpoint/delete",
    summary="Delete a webhook endpoint",
    response_model=WebhookEndpointDeleted,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def delete_webhook_endpoint(
    body: WebhookEndpointRequest, db: Database, _: Admin, now: Now
) -> WebhookEndpointDeleted:
    """Nothing more is sent to it; its deliveries and attempts stay on record."""
    async with transaction(db) as conn:
        await endpoints.delete_endpoint(conn, body.id, now)
    return WebhookEndpointDeleted(id=body.id)


@router.post(
    "/webhook-endpoint/deliveries",
    summary="List an endpoint's deliveries and their attempts",
    response_model=WebhookDeliveryPage,
    responses={**ok_with_rate_limit(), **responses(404)},
)
async def list_webhook_deliveries(
    body: WebhookDeliveryListRequest, db: Database, _: Admin
) -> WebhookDeliveryPage:
    """Needs an `admin` key. Oldest first, optionally only those in one `status`."""
    limit = body.pagination.limit
    after = pagination.decode("webhook-deliveries", body.pagination.cursor, int)
    async with transaction(db) as conn:
        page = await deliveries.list_deliveries(conn, body.endpoint_id, limit, after, body.status)
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
    body: WebhookRedeliverRequest, db: Database, _: Admin, now: Now
) -> WebhookRedelivered:
    """Same `webhook-id` and body, a new attempt chain; deliveries still pending are left."""
    async with transaction(db) as conn:
        count = await deliveries.redeliver_message(conn, body.message_id, now, body.endpoint_id)
    return WebhookRedelivered(message_id=body.message_id, deliveries=count)


def _with_secret(created: endpoints.EndpointWithSecret) -> WebhookEndpointWithSecret:
    public = WebhookEndpointPublic.of(created.endpoint)
    return WebhookEndpointWithSecret(**public.model_dump(), secret=created.secret)
