"""Webhook delivery: Standard Webhooks signatures, URL safety, and the dispatcher that sends."""
