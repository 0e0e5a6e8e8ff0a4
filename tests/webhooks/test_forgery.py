"""Forged webhooks move no money: the secret override, future signatures, lying bodies.

An attacker who can reach the endpoint tries what an outside attack run found:
naming their own signing secret in ``X-Djstripe-Webhook-Secret`` (which
dj-stripe honours with ``DEBUG`` on), a signature dated in the future, and,
with a valid signature, an event whose body lies about the object at Stripe.
"""

from __future__ import annotations

import time

import httpx
import pytest
from django.utils import timezone
from djstripe.models import Event, WebhookEndpoint

from billing.models import BillingModel, Payment
from billing.services.checkout import checkout_credit_pack_start
from billing.services.collection import collections_sweep
from billing.services.ledger import credit_grant
from billing.services.outbox import outbox_dispatch
from mcpbilling.stripe_api import stripe_client
from tests.billing.test_collection import calls, with_card
from tests.factories import CreditPackFactory, PlanFactory, customer
from tests.webhooks.support import balance, event_body, signed
from webhooks.models import EventProcessing
from webhooks.services import webhook_endpoint_ensure

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def endpoint(stripe_emulated) -> WebhookEndpoint:
    return webhook_endpoint_ensure(site_url="http://testserver")


def _post(client, endpoint: WebhookEndpoint, body: bytes, signature: str, **headers):
    return client.post(
        f"/stripe/webhook/{endpoint.djstripe_uuid}/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
        **headers,
    )


def _paid_session_claim(session_id: str, owner, pack_slug: str) -> dict:
    """What a forger says a paid Checkout Session for ``pack_slug`` looks like."""
    return {
        "id": session_id,
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "mode": "payment",
        "customer": owner.stripe_customer_id,
        "metadata": {"mcpb_customer_id": str(owner.pk), "mcpb_pack": pack_slug},
    }


def _open_session(owner, pack) -> str:
    url = checkout_credit_pack_start(
        customer=owner, pack=pack, success_url="http://x/ok", cancel_url="http://x/no"
    )
    return url.rsplit("/", 1)[1]


@pytest.mark.parametrize("debug", [True, False])
def test_a_secret_named_in_the_request_is_refused_with_debug_on_or_off(
    client, endpoint, settings, debug
):
    settings.DEBUG = debug
    owner = customer()
    pack = CreditPackFactory(credits=50_000)
    body = event_body(
        "checkout.session.completed", _paid_session_claim("cs_forged", owner, pack.slug)
    )

    response = _post(
        client,
        endpoint,
        body,
        signed(body, "whsec_attacker"),
        HTTP_X_DJSTRIPE_WEBHOOK_SECRET="whsec_attacker",
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_refused"
    assert not Event.objects.exists() and not EventProcessing.objects.exists()
    assert balance(owner) == 0


def test_the_secret_override_is_refused_even_with_the_real_secret(client, endpoint, settings):
    settings.DEBUG = True
    body = event_body("mystery.thing_happened", {"id": "obj_1", "object": "mystery"})

    response = _post(
        client,
        endpoint,
        body,
        signed(body, endpoint.secret),
        HTTP_X_DJSTRIPE_WEBHOOK_SECRET=endpoint.secret,
    )

    assert response.status_code == 400
    assert not EventProcessing.objects.exists()


@pytest.mark.parametrize("ahead_s", [301, 600, 86_400])
def test_a_signature_dated_beyond_the_tolerance_in_the_future_is_refused(client, endpoint, ahead_s):
    body = event_body("mystery.thing_happened", {"id": "obj_1", "object": "mystery"})

    future = signed(body, endpoint.secret, timestamp=int(time.time()) + ahead_s)
    response = _post(client, endpoint, body, future)

    assert response.status_code == 400
    assert not EventProcessing.objects.exists()


def test_a_signature_a_little_ahead_within_the_tolerance_is_accepted(client, endpoint):
    body = event_body("mystery.thing_happened", {"id": "obj_1", "object": "mystery"})

    response = _post(
        client, endpoint, body, signed(body, endpoint.secret, timestamp=int(time.time()) + 30)
    )

    assert response.status_code == 200


def test_a_signed_body_claiming_an_unpaid_session_is_paid_grants_nothing(client, endpoint):
    owner = customer()
    pack = CreditPackFactory(credits=50_000)
    session_id = _open_session(owner, pack)  # at Stripe: open, unpaid
    owner.refresh_from_db()
    body = event_body(
        "checkout.session.completed", _paid_session_claim(session_id, owner, pack.slug)
    )

    response = _post(client, endpoint, body, signed(body, endpoint.secret))

    assert response.status_code == 200  # a genuine delivery format: accepted, then checked
    processing = EventProcessing.objects.get(event_id="evt_test_1")
    assert processing.status == "ignored"
    assert "open" in processing.result
    assert balance(owner) == 0


def test_a_signed_body_naming_a_bigger_pack_grants_the_pack_paid_for(client, endpoint, emulator):
    owner = customer()
    small = CreditPackFactory(credits=10)
    big = CreditPackFactory(credits=50_000)
    session_id = _open_session(owner, small)
    httpx.post(f"{emulator.url}/_emulator/checkout/{session_id}/pay", json={}).raise_for_status()
    owner.refresh_from_db()
    body = event_body(
        "checkout.session.completed",
        _paid_session_claim(session_id, owner, big.slug),
        event_id="evt_lying_pack",
    )

    response = _post(client, endpoint, body, signed(body, endpoint.secret))

    assert response.status_code == 200
    assert balance(owner) == 10


def test_a_signed_success_for_a_declined_top_up_grants_nothing(client, endpoint):
    pack = CreditPackFactory(credits=100, price_cents=900)
    plan = PlanFactory(
        billing_model=BillingModel.CREDITS, auto_topup_threshold_credits=10, auto_topup_pack=pack
    )
    owner = with_card(customer(plan=plan), "pm_card_chargeCustomerFail")
    credit_grant(customer_id=owner.pk, credits=10, idempotency_key="seed")
    calls(owner, 1, cents=1)  # 9 left: under the threshold
    assert collections_sweep() == 1
    outbox_dispatch(now=timezone.now())
    payment = Payment.objects.get(customer=owner)
    assert payment.status == "failed"
    intent_id = payment.stripe_payment_intent_id
    assert stripe_client().v1.payment_intents.retrieve(intent_id).status != "succeeded"
    claim = {
        "id": intent_id,
        "object": "payment_intent",
        "status": "succeeded",
        "amount": 900,
        "metadata": {"mcpb_purpose": "topup", "mcpb_payment_id": str(payment.pk)},
    }
    body = event_body("payment_intent.succeeded", claim, event_id="evt_lying_intent")

    response = _post(client, endpoint, body, signed(body, endpoint.secret))

    assert response.status_code == 200
    # Stripe's state (a failed payment) was applied, not the body's claim.
    assert (
        "requires_payment_method" in EventProcessing.objects.get(event_id="evt_lying_intent").result
    )
    assert Payment.objects.get(pk=payment.pk).status == "failed"
    assert balance(owner) == 9
