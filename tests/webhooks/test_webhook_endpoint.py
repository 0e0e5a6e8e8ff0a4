"""dj-stripe's endpoint with our processing: signatures, unknown types, failures and retries."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from djstripe.models import Event, WebhookEndpoint

from tests.factories import CreditPackFactory, customer
from tests.webhooks.support import balance, event_body, signed
from webhooks import handlers
from webhooks.models import EventProcessing
from webhooks.services import event_process, events_sweep, webhook_endpoint_ensure

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def endpoint(stripe_emulated) -> WebhookEndpoint:
    return webhook_endpoint_ensure(site_url="http://testserver")


def _post(client, endpoint: WebhookEndpoint, body: bytes, signature: str):
    return client.post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    )


def test_setup_is_idempotent_and_stores_the_signing_secret(endpoint, emulator):
    again = webhook_endpoint_ensure(site_url="http://testserver")

    assert again.pk == endpoint.pk
    assert endpoint.secret.startswith("whsec_")
    assert endpoint.url == f"http://testserver/stripe/webhook/{endpoint.djstripe_uuid}/"
    assert len(emulator.store.all("webhook_endpoint")) == 1


def test_forged_signature_is_refused_and_nothing_is_processed(client, endpoint):
    body = event_body("checkout.session.completed", {"id": "cs_forged", "object": "x"})

    response = _post(client, endpoint, body, signed(body, "whsec_not_the_secret"))

    assert response.status_code == 400
    assert not Event.objects.exists()
    assert not EventProcessing.objects.exists()


def test_signature_older_than_300_seconds_is_refused(client, endpoint):
    body = event_body("checkout.session.completed", {"id": "cs_old", "object": "x"})

    old = signed(body, endpoint.secret, timestamp=int(time.time()) - 301)
    response = _post(client, endpoint, body, old)

    assert response.status_code == 400
    assert not EventProcessing.objects.exists()


def test_unknown_event_type_is_accepted_and_ignored(client, endpoint):
    body = event_body("mystery.thing_happened", {"id": "obj_1", "object": "mystery"})

    response = _post(client, endpoint, body, signed(body, endpoint.secret))

    assert response.status_code == 200
    assert EventProcessing.objects.get(event_id="evt_test_1").status == "ignored"


def _paid_checkout_event(client, endpoint, emulator, emulator_http, owner, pack) -> str:
    """Pay a pack's Checkout at the emulator and deliver its completion; returns the event id."""
    from billing.services.checkout import checkout_credit_pack_start

    url = checkout_credit_pack_start(
        customer=owner, pack=pack, success_url="http://x/ok", cancel_url="http://x/no"
    )
    emulator_http.post("/_emulator/webhooks/pause").raise_for_status()
    emulator_http.post(f"/_emulator/checkout/{url.rsplit('/', 1)[1]}/pay", json={})
    event = emulator.events("checkout.session.completed")[0]
    body = emulator.client().v1.events.retrieve(event["id"])
    raw = str(body).encode()
    assert _post(client, endpoint, raw, signed(raw, endpoint.secret)).status_code == 200
    return event["id"]


def test_failing_handler_leaves_the_event_failed_then_admin_retry_succeeds(
    client, endpoint, emulator, emulator_http, monkeypatch
):
    owner = customer()
    pack = CreditPackFactory(credits=40)

    def broken(obj):
        raise ValueError("handler bug")

    monkeypatch.setitem(handlers.HANDLERS, "checkout.session.completed", broken)
    event_id = _paid_checkout_event(client, endpoint, emulator, emulator_http, owner, pack)
    failed = EventProcessing.objects.get(event_id=event_id)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert "handler bug" in failed.last_error
    assert failed.next_attempt_at is not None
    assert balance(owner) == 0

    monkeypatch.undo()
    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(admin)
    response = client.post(
        "/admin/webhooks/eventprocessing/",
        {"action": "retry", "_selected_action": [failed.pk]},
    )

    assert response.status_code == 302
    retried = EventProcessing.objects.get(pk=failed.pk)
    assert (retried.status, retried.attempts, retried.last_error) == ("succeeded", 2, "")
    assert balance(owner) == 40


def test_same_event_processed_twice_grants_once(client, endpoint, emulator, emulator_http):
    owner = customer()
    event_id = _paid_checkout_event(
        client, endpoint, emulator, emulator_http, owner, CreditPackFactory(credits=25)
    )
    EventProcessing.objects.filter(event_id=event_id).update(status="pending")

    assert event_process(event_id=event_id) == "succeeded"
    assert event_process(event_id=event_id) == "succeeded"  # already done: not run again
    assert balance(owner) == 25


def test_sweep_requeues_due_failures_but_not_finished_events(client, endpoint):
    body = event_body("mystery.thing_happened", {"id": "obj_1", "object": "mystery"})
    _post(client, endpoint, body, signed(body, endpoint.secret))
    EventProcessing.objects.update(status="failed", next_attempt_at="2000-01-01T00:00Z")

    assert events_sweep() == 1
    assert EventProcessing.objects.get().status == "ignored"
    assert events_sweep() == 0
