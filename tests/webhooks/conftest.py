"""Stripe on the emulator, the site in a live server registered as its webhook endpoint."""

import httpx
import pytest


@pytest.fixture
def emulator_http(emulator):
    """Plain HTTP to the emulator's pages and /_emulator/ helpers."""
    with httpx.Client(base_url=emulator.url, timeout=10) as session:
        yield session


@pytest.fixture
def site(stripe_emulated, live_server):
    """The Django site in a live server, registered as the emulator's webhook endpoint."""
    from webhooks.services import webhook_endpoint_ensure

    webhook_endpoint_ensure(site_url=live_server.url)
    return live_server.url
