"""Webhook endpoints, events, and signed delivery with retries, resends and reordering."""

import time

import pytest
import stripe

from mcpbilling.stripe_emulator.testing import wait_for


@pytest.fixture
def endpoint(client, receiver):
    """An endpoint for every event, pointing at the local receiver."""
    return client.v1.webhook_endpoints.create({"url": receiver.url, "enabled_events": ["*"]})


def test_endpoint_crud_and_secret_only_on_create(client, receiver):
    created = client.v1.webhook_endpoints.create(
        {
            "url": receiver.url,
            "enabled_events": ["customer.created"],
            "description": "main",
            "metadata": {"k": "v"},
        }
    )
    assert created.secret.startswith("whsec_")
    fetched = client.v1.webhook_endpoints.retrieve(created.id)
    assert "secret" not in fetched
    assert (fetched.status, fetched.enabled_events) == ("enabled", ["customer.created"])
    updated = client.v1.webhook_endpoints.update(
        created.id, {"disabled": True, "enabled_events": ["*"]}
    )
    assert (updated.status, updated.enabled_events) == ("disabled", ["*"])
    assert [e.id for e in client.v1.webhook_endpoints.list().data] == [created.id]
    assert client.v1.webhook_endpoints.delete(created.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.webhook_endpoints.retrieve(created.id)


def test_endpoint_validation(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.webhook_endpoints.create({"url": "ftp://nope", "enabled_events": ["*"]})
    assert caught.value.param == "url"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.webhook_endpoints.create(
            {"url": "https://x.example/h", "enabled_events": ["Not An Event"]}
        )
    assert caught.value.param == "enabled_events"


def test_delivery_is_signed_as_construct_event_verifies(client, receiver, endpoint):
    cus = client.v1.customers.create({"email": "signed@example.com"})
    received = wait_for(lambda: receiver.requests)[0]
    event = stripe.Webhook.construct_event(
        received.body, received.headers["Stripe-Signature"], endpoint.secret
    )
    assert (event.type, event.data.object.id) == ("customer.created", cus.id)
    assert event.api_version == stripe.api_version
    assert event["request"]["idempotency_key"] is not None
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            received.body, received.headers["Stripe-Signature"], "whsec_wrong"
        )


def test_only_subscribed_event_types_are_delivered(client, emulator, receiver):
    client.v1.webhook_endpoints.create({"url": receiver.url, "enabled_events": ["product.created"]})
    client.v1.customers.create({"email": "skip@example.com"})
    client.v1.products.create({"name": "Sent"})
    wait_for(lambda: receiver.requests)
    emulator.wait_idle()
    assert [e["type"] for e in receiver.events()] == ["product.created"]


def test_updates_carry_previous_attributes(client, emulator, receiver, endpoint):
    cus = client.v1.customers.create({"email": "before@example.com"})
    client.v1.customers.update(cus.id, {"email": "after@example.com"})
    updated = wait_for(lambda: receiver.events("customer.updated"))[0]
    assert updated["data"]["object"]["email"] == "after@example.com"
    assert updated["data"]["previous_attributes"] == {"email": "before@example.com"}


def test_failed_deliveries_are_retried_and_recorded(client, emulator, http, receiver, endpoint):
    receiver.fail_next(500, 503)
    client.v1.customers.create({"email": "retry@example.com"})
    wait_for(lambda: len(receiver.requests) == 3)
    emulator.wait_idle()  # the receiver answers before the emulator records the attempt
    attempts = http.get("/_emulator/deliveries", params={"type": "customer.created"}).json()["data"]
    assert [(a["attempt"], a["status"], a["ok"]) for a in attempts] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    event_id = attempts[0]["event"]
    assert all(a["event"] == event_id for a in attempts)
    assert wait_for(lambda: client.v1.events.retrieve(event_id).pending_webhooks == 0) is True


def test_an_unreachable_endpoint_is_given_up_after_max_attempts(client, emulator, http):
    client.v1.webhook_endpoints.create(
        {"url": "http://127.0.0.1:9/unreachable", "enabled_events": ["*"]}
    )
    client.v1.customers.create({"email": "nobody-home@example.com"})
    wait_for(lambda: len(emulator.deliveries()) == 4, timeout=10)
    emulator.wait_idle()
    records = emulator.deliveries()
    assert [r["attempt"] for r in records] == [1, 2, 3, 4]
    assert all(r["status"] is None and r["error"] for r in records)
    assert emulator.events()[0]["pending_webhooks"] == 1


def test_resend_delivers_a_duplicate(client, emulator, http, receiver, endpoint):
    client.v1.customers.create({"email": "twice@example.com"})
    first = wait_for(lambda: receiver.events())[0]
    assert http.post(f"/_emulator/events/{first['id']}/resend").json() == {"queued": 1}
    wait_for(lambda: len(receiver.requests) == 2)
    assert receiver.events()[1]["id"] == first["id"]


def test_pause_then_flush_in_reverse_order(client, emulator, http, receiver, endpoint):
    http.post("/_emulator/webhooks/pause")
    cus = client.v1.customers.create({"email": "order@example.com"})
    client.v1.customers.update(cus.id, {"name": "Second"})
    client.v1.customers.delete(cus.id)
    assert http.get("/_emulator/health").json()["webhooks"]["held"] == 3
    assert receiver.requests == []
    assert (
        http.post("/_emulator/deliveries/flush", params={"order": "reverse"}).json()["flushed"] == 3
    )
    wait_for(lambda: len(receiver.requests) == 3)
    assert [e["type"] for e in receiver.events()] == [
        "customer.deleted",
        "customer.updated",
        "customer.created",
    ]
    client.v1.customers.create({"email": "held@example.com"})
    assert http.get("/_emulator/health").json()["webhooks"]["held"] == 1
    assert http.post("/_emulator/webhooks/resume").json()["released"] == 1
    wait_for(lambda: len(receiver.requests) == 4)


def test_delivery_does_not_block_the_api(client, emulator, receiver, endpoint):
    receiver.delay_s = 0.5
    started = time.monotonic()
    client.v1.customers.create({"email": "fast@example.com"})
    client.v1.products.create({"name": "Fast"})
    assert time.monotonic() - started < 0.4
    wait_for(lambda: len(receiver.requests) == 2)
    emulator.wait_idle()


def test_events_list_and_type_filter(client):
    cus = client.v1.customers.create({"email": "ev@example.com"})
    client.v1.customers.update(cus.id, {"name": "E"})
    client.v1.products.create({"name": "P"})
    assert [e.type for e in client.v1.events.list({"type": "customer.*"}).data] == [
        "customer.updated",
        "customer.created",
    ]
    assert [e.type for e in client.v1.events.list({"types": ["product.created"]}).data] == [
        "product.created"
    ]
    first = client.v1.events.list({"limit": 1}).data[0]
    assert client.v1.events.retrieve(first.id).data.object.name == "P"
