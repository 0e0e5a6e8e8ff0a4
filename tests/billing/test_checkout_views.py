"""The customer's billing pages: sign-in, packs and plans, and the Stripe pages they open."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model

from billing.models import BillingModel
from billing.services.stripe_catalog import plan_stripe_sync, stripe_customer_ensure
from tests.factories import CreditPackFactory, PlanFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path", ["/billing/credits/", "/billing/plans/", "/billing/payment-method/"]
)
def test_signed_out_visitors_are_sent_to_the_login_page(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_login_page_signs_in_by_email_and_returns_to_the_page(client, shopper):
    client.logout()
    EmailAddress.objects.create(
        user_id=shopper.user_id, email=shopper.email, verified=True, primary=True
    )
    page = client.get("/accounts/login/?next=/billing/credits/")
    assert page.status_code == 200 and b'name="password"' in page.content

    response = client.post(
        "/accounts/login/",
        {"login": "shopper@example.com", "password": "pw-12345-x", "next": "/billing/credits/"},
    )

    assert response.status_code == 302 and response["Location"] == "/billing/credits/"


def test_a_user_without_a_billing_customer_is_told_why_in_the_layout(client):
    user = get_user_model().objects.create_user("nobody", "nobody@example.com", "pw")
    client.force_login(user)

    page = client.get("/billing/credits/")

    assert page.status_code == 403
    assert b"This sign-in has no billing account" in page.content
    assert b'id="main"' in page.content  # the site's layout


def test_a_staff_user_without_a_customer_is_sent_to_the_admin(client):
    user = get_user_model().objects.create_user("operator", "op@example.com", "pw", is_staff=True)
    client.force_login(user)

    response = client.get("/billing/credits/")

    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_credits_page_lists_active_packs_with_prices_and_the_balance(client, shopper):
    CreditPackFactory(name="Starter", credits=100, price_cents=1250)
    CreditPackFactory(name="Retired", active=False)

    page = client.get("/billing/credits/").content.decode()

    assert "Starter" in page and "$12.50" in page
    assert "Retired" not in page
    assert re.search(r'id="available-credits">\s*0\s*<', page)


def test_buying_a_pack_redirects_to_a_payment_mode_checkout(client, shopper, stripe_emulated):
    pack = CreditPackFactory(slug="starter", credits=100, price_cents=1250)

    response = client.post("/billing/credits/", {"pack": "starter"})

    assert response.status_code == 303
    session_id = response["Location"].rsplit("/", 1)[1]
    assert response["Location"] == f"{stripe_emulated.url}/c/pay/{session_id}"
    session = stripe_emulated.client().v1.checkout.sessions.retrieve(session_id)
    shopper.refresh_from_db()
    pack.refresh_from_db()
    assert (session.mode, session.amount_total, session.customer) == (
        "payment",
        1250,
        shopper.stripe_customer_id,
    )
    assert session.metadata["mcpb_pack"] == "starter"
    assert session.success_url.endswith("/billing/credits/?return=success")


def test_returning_from_checkout_shows_a_message(client, shopper):
    assert b"Payment received" in client.get("/billing/credits/?return=success").content
    assert b"nothing was charged" in client.get("/billing/plans/?return=cancel").content


def test_plans_page_marks_the_current_plan_and_the_preselected_one(client, shopper):
    PlanFactory(slug="pro", name="Pro", billing_model=BillingModel.SUBSCRIPTION)
    PlanFactory(slug="hidden", name="Hidden", public=False)

    page = client.get("/billing/plans/?plan=pro").content.decode()

    current = page[page.index('id="plan-credits"') :]
    assert current.index("Your plan") < current.index("</div>\n</div>") + 200
    assert 'plan-card h-100 border-warning" id="plan-pro"' in page
    assert "Hidden" not in page


def test_subscribing_redirects_to_a_subscription_mode_checkout(client, shopper, stripe_emulated):
    plan = PlanFactory(slug="pro", billing_model=BillingModel.SUBSCRIPTION, price_cents=2000)
    plan_stripe_sync(plan=plan)

    response = client.post("/billing/plans/", {"plan": "pro"})

    assert response.status_code == 303
    session = stripe_emulated.client().v1.checkout.sessions.retrieve(
        response["Location"].rsplit("/", 1)[1]
    )
    assert (session.mode, session.amount_total) == ("subscription", 2000)


def test_a_plan_without_a_stripe_price_is_switched_to_at_once(client, shopper):
    PlanFactory(slug="free", name="Free", billing_model=BillingModel.FREEMIUM)

    response = client.post("/billing/plans/", {"plan": "free"}, follow=True)

    shopper.refresh_from_db()
    assert shopper.plan.slug == "free"
    assert b"Your plan has been changed" in response.content


def test_a_subscriber_choosing_a_plan_goes_to_the_portal(client, shopper, stripe_emulated):
    plan = PlanFactory(slug="pro", billing_model=BillingModel.SUBSCRIPTION, price_cents=2000)
    plan_stripe_sync(plan=plan)
    stripe_customer_ensure(customer=shopper)
    shopper.subscription_status = "active"
    shopper.save()

    response = client.post("/billing/plans/", {"plan": "pro"})

    assert response.status_code == 303
    assert response["Location"].startswith(f"{stripe_emulated.url}/p/session/")


@pytest.mark.parametrize(
    ("path", "back"),
    [
        ("/billing/payment-method/", "/billing/payment-method/"),
        ("/billing/portal/", "/billing/invoices/"),
    ],
)
def test_card_and_portal_open_the_billing_portal(client, shopper, stripe_emulated, path, back):
    response = client.post(path)

    assert response.status_code == 303
    portal_id = response["Location"].removeprefix(f"{stripe_emulated.url}/p/session/")
    with stripe_emulated.store.lock:
        portal = stripe_emulated.store.get("billing_portal.session", portal_id)
    shopper.refresh_from_db()
    assert portal["customer"] == shopper.stripe_customer_id
    assert portal["return_url"] == f"http://testserver{back}?return=portal"


def test_stripe_unavailable_sends_the_customer_back_with_an_error(client, shopper, settings):
    settings.STRIPE_API_HOST = "http://127.0.0.1:9"  # nothing listens there
    CreditPackFactory(slug="starter")

    response = client.post("/billing/credits/", {"pack": "starter"}, follow=True)

    assert response.redirect_chain == [("/billing/credits/", 302)]
    assert b"Payments are unavailable right now" in response.content
