"""The OpenAPI document is accurate: schemathesis finds no break of its contract (FAULTS A9)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from starlette.types import Receive, Scope, Send

from autostamp.settings import ApiSettings
from ledger import keys
from publisher_api import create_app, openapi_document
from tests.publisher_api.conftest import add_program, broker_up, config, issue_key


@pytest.fixture
async def fuzz_key(async_engine: AsyncEngine) -> str:
    # An admin key reaches every call, the webhook endpoints' included.
    await add_program(async_engine, "lp_coffee")
    return await issue_key(async_engine, keys.Scope.ADMIN)


async def any_url(url: str) -> object:
    """The URL policy of the fuzzed app: the URL checks have tests of their own (test_urls)."""
    return url


class AcknowledgingSink:
    """A transactions topic that acknowledges at once: the broker's paths have tests of their
    own (test_ingest); here only the documented contract is checked."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bytes]] = []

    async def put(self, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        self.messages += messages


@pytest.fixture
async def fuzz_app(database_url: str) -> AsyncIterator[FastAPI]:
    # schemathesis runs the app on its own event loop: connections must not outlive a request.
    engine = create_async_engine(database_url, poolclass=NullPool)
    # Fuzzing sends many bad keys from one address; the limits have tests of their own.
    limits = ApiSettings(
        rate_limit_per_minute=100_000, rate_limit_burst=100_000, failed_auth_per_minute=100_000
    )
    app = create_app(config(limits), engine, broker_up, any_url, ingest_sink=AcknowledgingSink())
    _app_under_test.target = app
    yield app
    _app_under_test.target = None
    await engine.dispose()


class _AppUnderTest:
    """Stands in for the app of the running test, so the schema can be loaded at import."""

    target: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.target is not None:  # the lifespan schemathesis starts may outlive a test
            await self.target(scope, receive, send)


# Loaded from the document rather than through a fixture: the lazy loader of schemathesis
# does not work with this pytest.
_app_under_test = _AppUnderTest()
schema = schemathesis.openapi.from_dict(openapi_document())
schema.app = _app_under_test


def fuzz_settings(environ: Mapping[str, str]) -> settings:
    """How the contract is fuzzed: by default, 25 cases a call, the same ones on every run
    (derandomized: a seed from the test's code, and no example database), so a red CI run is
    the code's doing and not the draw's. `TEST_FUZZ_EXAMPLES=N` draws N fresh random cases a
    call instead, to hunt for breaks the fixed cases miss (CONTRIBUTING.md)."""
    common = {"deadline": None, "suppress_health_check": list(HealthCheck)}
    asked = environ.get("TEST_FUZZ_EXAMPLES", "").strip()
    if asked:
        return settings(max_examples=int(asked), derandomize=False, print_blob=True, **common)
    return settings(max_examples=25, derandomize=True, **common)


FUZZ = fuzz_settings(os.environ)


@schema.parametrize()
@FUZZ
def test_no_call_breaks_the_documented_contract(
    case: Any, fuzz_app: FastAPI, fuzz_key: str
) -> None:
    _forget_forged_cursor(case.body)
    if case.headers and "Idempotency-Key" in case.headers:
        # One key per request: a key reused with another body is a 422 by design.
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_key}"})


def _drawn(fuzz: settings) -> list[Any]:
    """The bodies a fuzz run with `fuzz` draws for `operation/list`, in order."""
    drawn: list[Any] = []

    @fuzz
    @given(schema["/publisher.v1/operation/list"]["POST"].as_strategy())
    def draw(case: Any) -> None:
        drawn.append(case.body)

    draw()
    return drawn


def test_the_fuzz_run_draws_the_same_cases_on_every_run() -> None:
    fixed = fuzz_settings({})
    assert _drawn(fixed) == _drawn(fixed)


def test_asking_for_more_fuzz_cases_draws_fresh_random_ones() -> None:
    longer = fuzz_settings({"TEST_FUZZ_EXAMPLES": "500"})
    assert (longer.max_examples, longer.derandomize) == (500, False)


def _forget_forged_cursor(body: Any) -> None:
    """Drop a well-formed cursor the API never issued (a 400 the schema cannot foresee).

    test_pagination covers those; malformed ones stay, as the schema refuses them too.
    """
    pagination = body.get("pagination") if isinstance(body, dict) else None
    cursor = pagination.get("cursor") if isinstance(pagination, dict) else None
    if isinstance(cursor, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,512}", cursor):
        body["pagination"]["cursor"] = None


K42_CALLS = [
    "/publisher.v1/loyalty-program/list",
    "/publisher.v1/loyalty-program/get",
    "/publisher.v1/wallet.stamp-collection/create",
    "/publisher.v1/wallet.stamp-collection/get",
    "/publisher.v1/wallet.stamp-collection/list",
]


async def test_served_document_is_the_one_the_cli_prints(client: httpx.AsyncClient) -> None:
    served = await client.get("/openapi.json")

    assert served.status_code == 200
    assert served.json() == openapi_document()


def test_document_names_every_call_with_bearer_security_and_error_shapes() -> None:
    document = openapi_document()
    paths = document["paths"]

    assert set(K42_CALLS) <= set(paths)
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path in K42_CALLS:
        operation = paths[path]["post"]
        assert operation["security"] == [{"HTTPBearer": []}]
        # No FastAPI validation 422: invalid bodies are 400 with our error shape.
        assert "HTTPValidationError" not in str(operation["responses"].get("422"))
        for status in ("400", "401", "403", "413", "415", "429", "500"):
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
        assert "Retry-After" in operation["responses"]["429"]["headers"]
    enroll = paths["/publisher.v1/wallet.stamp-collection/create"]["post"]
    assert {"409", "422"} <= set(enroll["responses"])
    assert "Idempotency-Key" in [parameter["name"] for parameter in enroll["parameters"]]
    assert "security" not in paths["/healthz"]["get"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_request_schemas_refuse_unknown_fields() -> None:
    schemas = openapi_document()["components"]["schemas"]

    for name in ("CollectionCreate", "ProgramListRequest", "Pagination", "RewardListRequest"):
        assert schemas[name]["additionalProperties"] is False
