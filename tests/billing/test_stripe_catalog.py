"""Plans and credit packs pushed to Stripe (the emulator) and mirrored by dj-stripe."""

from __future__ import annotations

import io
from decimal import Decimal

import httpx
import pytest
import stripe
from django.core.management import call_command
from djstripe import models as dj

from billing.models import BillingModel, Plan
from billing.services.stripe_catalog import (
    credit_pack_stripe_sync,
    plan_stripe_sync,
    stripe_customer_ensure,
)
from tests.factories import CreditPackFactory, PlanFactory, customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_api(stripe_emulated):
    return stripe_emulated.client()


def test_command_creates_prices_once_and_mirrors_them(stripe_api):
    pro = PlanFactory(
        slug="pro", billing_model=BillingModel.SUBSCRIPTION, price_cents=2000, interval="year"
    )
    pack = CreditPackFactory(slug="starter", price_cents=500)
    PlanFactory(slug="credits", billing_model=BillingModel.CREDITS)

    out = io.StringIO()
    call_command("stripe_sync_catalog", stdout=out)
    call_command("stripe_sync_catalog", stdout=io.StringIO())

    pro.refresh_from_db()
    pack.refresh_from_db()
    assert f"plan:pro: price={pro.stripe_price_id}" in out.getvalue()
    price = stripe_api.v1.prices.retrieve(pro.stripe_price_id)
    assert (price.lookup_key, price.unit_amount, price.recurring.interval) == (
        "mcpb_plan_pro",
        2000,
        "year",
    )
    one_time = stripe_api.v1.prices.retrieve(pack.stripe_price_id)
    assert (one_time.lookup_key, one_time.unit_amount, one_time.type) == (
        "mcpb_pack_starter",
        500,
        "one_time",
    )
    assert len(stripe_api.v1.prices.list({"limit": 100}).data) == 2  # nothing for "credits"
    assert dj.Price.objects.filter(id__in=[pro.stripe_price_id, pack.stripe_price_id]).count() == 2
    assert dj.Product.objects.filter(id="mcpb_plan_pro").exists()


def test_a_changed_amount_gets_a_new_price_and_archives_the_old(stripe_api):
    pack = CreditPackFactory(slug="big", price_cents=1000)
    first = credit_pack_stripe_sync(pack=pack).price_id
    pack.price_cents = 1200
    pack.save()

    second = credit_pack_stripe_sync(pack=pack).price_id

    assert second != first
    assert stripe_api.v1.prices.retrieve(first).active is False
    found = stripe_api.v1.prices.list({"lookup_keys": ["mcpb_pack_big"]}).data
    assert [(p.id, p.unit_amount) for p in found] == [(second, 1200)]
    pack.refresh_from_db()
    assert pack.stripe_price_id == second


@pytest.mark.parametrize(
    ("fields", "licensed"),
    [
        ({"billing_model": BillingModel.USAGE}, False),
        (
            {
                "billing_model": BillingModel.SUBSCRIPTION,
                "price_cents": 1500,
                "overage": Plan.Overage.METERED,
            },
            True,
        ),
    ],
)
def test_metered_plans_get_a_meter_and_a_price_per_microcent(stripe_api, fields, licensed):
    plan = PlanFactory(slug="metered", stripe_meter_event_name="mcpb_calls", **fields)

    synced = plan_stripe_sync(plan=plan)
    plan_stripe_sync(plan=plan)

    meters = stripe_api.v1.billing.meters.list().data
    assert [(m.event_name, m.default_aggregation.formula) for m in meters] == [
        ("mcpb_calls", "sum")
    ]
    metered = stripe_api.v1.prices.retrieve(synced.metered_price_id)
    assert metered.lookup_key == "mcpb_plan_metered_metered"
    assert metered.unit_amount_decimal == Decimal("0.000001")  # cents: one microcent
    assert (metered.recurring.usage_type, metered.recurring.meter) == ("metered", meters[0].id)
    plan.refresh_from_db()
    assert (plan.stripe_price_id == synced.metered_price_id) is not licensed


def test_customer_ensure_survives_a_lost_answer_without_a_duplicate(stripe_api, emulator):
    owner = customer("lost@example.com")
    emulator_faults = {"path": "/v1/customers", "method": "POST", "status": 500, "after": True}
    httpx.post(f"{emulator.url}/_emulator/faults", json=emulator_faults).raise_for_status()

    with pytest.raises(stripe.APIError):
        stripe_customer_ensure(customer=owner)
    stripe_id = stripe_customer_ensure(customer=owner)

    remote = stripe_api.v1.customers.list({"email": "lost@example.com"}).data
    assert [c.id for c in remote] == [stripe_id]
    assert remote[0].metadata["mcpb_customer_id"] == str(owner.pk)
    owner.refresh_from_db()
    assert owner.stripe_customer_id == stripe_id
    assert dj.Customer.objects.filter(id=stripe_id).exists()
