"""The publisher API: K42's publisher calls over the ledger, with keys, limits and probes."""

from publisher_api.app import create_app, openapi_document

__all__ = ["create_app", "openapi_document"]
