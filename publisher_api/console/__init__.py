"""The console: a web page for operators with an admin key, served by the API at /console."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from publisher_api.console.routes import SECURITY_HEADERS, router
from publisher_api.console.session import PATH, FormRefused, SignInRequired, sign_in_location
from publisher_api.guards import BodyRule, media_type

__all__ = ["PATH", "body_rules", "install", "router"]

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _is_form(content_type: str | None) -> bool:
    return media_type(content_type) in FORM_TYPES


def body_rules(max_body_bytes: int, backtest_max_bytes: int) -> dict[str, BodyRule]:
    """The console's forms: URL-encoded or multipart, a backtest's upload larger than the rest."""
    refusal = "send the console's forms as a browser does"
    form = BodyRule(max_body_bytes, _is_form, refusal)
    return {
        PATH: form,
        f"{PATH}/backtest": BodyRule(backtest_max_bytes, _is_form, refusal),
    }


def install(app: FastAPI) -> None:
    """Serve the console's pages and assets on `app`."""
    app.include_router(router)
    app.mount(
        f"{PATH}/static",
        StaticFiles(packages=[("publisher_api.console", "static")]),
        name="console-static",
    )

    async def to_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return RedirectResponse(sign_in_location(exc.then), 303, headers=SECURITY_HEADERS)

    async def refused(request: Request, exc: Exception) -> Response:
        body = "<!doctype html><title>Refused</title><p>This form is stale: reload the page."
        return HTMLResponse(body, 403, headers=SECURITY_HEADERS)

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(FormRefused, refused)
