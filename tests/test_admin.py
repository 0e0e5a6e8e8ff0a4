"""Every model's admin pages render for an operator; the admin's billing actions."""

import uuid

import pytest
from django.contrib import admin
from django.urls import reverse

from billing.models import BillingModel, CreditAccount, Hold, LedgerEntry, Tool, UsageRecord
from billing.services.calls import call_authorize_ahead
from billing.services.ledger import credit_grant
from tests.factories import PlanFactory, api_key, customer, priced_tool

pytestmark = pytest.mark.django_db

MODELS = [
    model for model in admin.site._registry if model._meta.app_label in {"billing", "customers"}
]


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_superuser("op", "op@example.com", "pw")
    client.force_login(user)
    return client


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_changelist_and_search_render(operator, model):
    owner = customer()
    api_key(owner)
    priced_tool()
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert operator.get(url).status_code == 200
    assert operator.get(url, {"q": "example"}).status_code == 200


def test_adding_a_price_in_the_admin_writes_a_new_version(operator):
    tool = priced_tool("versioned", cents=1)
    response = operator.post(
        reverse("admin:billing_toolprice_add"),
        {
            "tool": tool.pk,
            "currency": "usd",
            "unit_amount_microcents": 250000,
            "credits": 2,
            "tiers": "[]",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    prices = Tool.objects.get(pk=tool.pk).prices.order_by("version")
    assert [(p.version, p.unit_amount_microcents) for p in prices] == [(1, 1000000), (2, 250000)]


def test_prices_cannot_be_edited_in_place(operator):
    tool = priced_tool("frozen")
    price = tool.prices.get()
    url = reverse("admin:billing_toolprice_change", args=[price.pk])
    operator.post(
        url, {"tool": tool.pk, "currency": "usd", "unit_amount_microcents": 1, "tiers": "[]"}
    )
    price.refresh_from_db()
    assert price.unit_amount_microcents == 1_000_000


def test_releasing_holds_releases_calls_and_returns_spares(operator, on_postgres):
    owner = customer(plan=PlanFactory(billing_model=BillingModel.CREDITS))
    credit_grant(customer_id=owner.pk, credits=100, idempotency_key="seed")
    hold, spares = call_authorize_ahead(
        customer=owner, tool=priced_tool(credits=3), api_key=None, spares=2
    )
    response = operator.post(
        reverse("admin:billing_hold_changelist"),
        {"action": "release", "_selected_action": [hold.pk, *(s.pk for s in spares)]},
    )
    assert response.status_code == 302
    assert Hold.objects.get(pk=hold.pk).status == Hold.Status.RELEASED
    assert Hold.objects.filter(spare=True, status=Hold.Status.RETURNED).count() == 2
    assert UsageRecord.objects.get().outcome == "cancelled"  # the call's; spares were no calls
    assert CreditAccount.objects.get(customer=owner).held_credits == 0


def _grant_action(operator, customers, **form):
    data = {"action": "grant_credits", "_selected_action": [c.pk for c in customers], **form}
    return operator.post(reverse("admin:customers_customer_changelist"), data)


def test_grant_credits_asks_for_credits_and_a_reason_then_grants_once(operator):
    ada, bob = customer("ada@example.com"), customer("bob@example.com")
    page = _grant_action(operator, [ada, bob])
    assert page.status_code == 200
    html = page.content.decode()
    assert "ada@example.com" in html and "bob@example.com" in html and 'name="reason"' in html
    token = page.context["form"].initial["grant_token"]
    refused = _grant_action(operator, [ada], apply="1", credits=50, reason="", grant_token=token)
    assert refused.status_code == 200 and refused.context["form"].errors["reason"]
    for _ in range(2):  # a double submit grants once
        done = _grant_action(
            operator, [ada, bob], apply="1", credits=50, reason="Goodwill", grant_token=token
        )
        assert done.status_code == 302
    for owner in (ada, bob):
        assert CreditAccount.objects.get(customer=owner).balance_credits == 50
        entry = LedgerEntry.objects.get(account__customer=owner)
        assert entry.description == "Goodwill (by op)"


def test_staff_who_may_not_grant_do_not_get_the_action(client, django_user_model):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(viewer)
    owner = customer()
    page = client.get(reverse("admin:customers_customer_changelist"))
    assert page.status_code == 200 and b"grant_credits" not in page.content
    _grant_action(client, [owner], apply="1", credits=5, reason="x", grant_token=uuid.uuid4())
    assert CreditAccount.objects.get(customer=owner).balance_credits == 0
