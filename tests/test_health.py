"""GET /healthz reports each dependency and answers 503 naming what is down."""

import pytest

from mcpbilling import health

pytestmark = pytest.mark.django_db


def test_unhealthy_stripe_is_named(client, settings):
    settings.STRIPE_API_HOST = "http://127.0.0.1:9"  # nothing listens on the discard port
    response = client.get("/healthz")
    assert response.status_code == 503, response.json()
    body = response.json()
    assert body["status"] == "unhealthy" and body["failing"] == ["stripe"]
    assert body["checks"]["database"]["ok"] and body["checks"]["cache"]["ok"]
    assert body["checks"]["stripe"]["error"].startswith("APIConnectionError")


def test_healthy_against_the_stripe_emulator(client, settings, emulator):
    settings.STRIPE_API_HOST = emulator.url
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response["Cache-Control"].startswith("max-age=0")


def test_broker_check_reaches_the_configured_broker():
    health.check_broker()  # the filesystem broker, or Redis in CI: raises when unreachable


def test_only_get(client):
    assert client.post("/healthz").status_code == 405
