"""Stripe's side of the catalogue and of customers: products, prices, meters, customers.

Everything is idempotent: products have our ids (``mcpb_plan_<slug>``), prices are
found by lookup key (``mcpb_plan_<slug>``, ``mcpb_plan_<slug>_metered``,
``mcpb_pack_<slug>``), meters by event name, customers by idempotency key. A
price whose amount changed is replaced: the new price takes the lookup key over
and the old one is archived (Stripe prices cannot change their amount).
dj-stripe's mirror is synced from what Stripe answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction
from djstripe import models as dj

from billing.models import BillingModel, CreditPack, Plan
from customers.models import Customer
from mcpbilling.stripe_api import stripe_client

# Meter events carry microcents; the metered price is this many cents per unit.
MICROCENT_IN_CENTS = "0.000001"


def plan_lookup_key(plan: Plan) -> str:
    return f"mcpb_plan_{plan.slug}"


def plan_metered_lookup_key(plan: Plan) -> str:
    return f"mcpb_plan_{plan.slug}_metered"


def pack_lookup_key(pack: CreditPack) -> str:
    return f"mcpb_pack_{pack.slug}"


def _plain(obj: Any) -> dict[str, Any]:
    """A stripe-python object as the plain JSON dict dj-stripe expects."""
    return json.loads(str(obj))


def mirror(model: type[dj.StripeModel], obj: Any) -> None:
    model.sync_from_stripe_data(_plain(obj), api_key=settings.STRIPE_SECRET_KEY)


# --- customers ---------------------------------------------------------------------


def stripe_customer_ensure(*, customer: Customer, client: stripe.StripeClient | None = None) -> str:
    """Create (or update) the customer's Stripe customer; returns its id.

    Called by the outbox dispatcher (``customer_sync``) and before a checkout.
    The idempotency key ``customer:<pk>`` makes a lost answer safe to resend.
    """
    client = client or stripe_client()
    params: dict[str, Any] = {
        "email": customer.email,
        "name": customer.name or customer.email,
        "metadata": {"mcpb_customer_id": str(customer.pk)},
    }
    if customer.stripe_customer_id:
        remote = client.v1.customers.update(customer.stripe_customer_id, params)
    else:
        remote = client.v1.customers.create(params, {"idempotency_key": f"customer:{customer.pk}"})
    with transaction.atomic():
        Customer.objects.filter(pk=customer.pk).update(stripe_customer_id=remote.id)
        customer.stripe_customer_id = remote.id
        mirror(dj.Customer, remote)
    return remote.id


# --- products, prices, meters -------------------------------------------------------


@dataclass(frozen=True)
class SyncedPrices:
    """The Stripe prices of one plan or pack after a sync."""

    price_id: str | None
    metered_price_id: str | None = None


def _product_ensure(
    client: stripe.StripeClient, *, product_id: str, name: str, active: bool
) -> Any:
    try:
        product = client.v1.products.retrieve(product_id)
    except stripe.InvalidRequestError as exc:
        if exc.code != "resource_missing":
            raise
        product = client.v1.products.create({"id": product_id, "name": name, "active": active})
    else:
        if product.name != name or product.active != active:
            product = client.v1.products.update(product_id, {"name": name, "active": active})
    mirror(dj.Product, product)
    return product


def _same_price(price: Any, wanted: dict[str, Any]) -> bool:
    recurring = price.recurring
    want_recurring = wanted.get("recurring")
    if (recurring is None) != (want_recurring is None):
        return False
    if recurring is not None and (
        recurring.interval != want_recurring["interval"]
        or recurring.usage_type != want_recurring.get("usage_type", "licensed")
        or (recurring.meter or None) != want_recurring.get("meter")
    ):
        return False
    amount = wanted.get("unit_amount_decimal") or str(wanted.get("unit_amount"))
    return (
        price.active
        and price.currency == wanted["currency"]
        and price.product == wanted["product"]
        and _decimal_equal(price.unit_amount_decimal, amount)
    )


def _decimal_equal(left: str | None, right: str | None) -> bool:
    return left is not None and right is not None and Decimal(left) == Decimal(right)


def _price_ensure(client: stripe.StripeClient, *, lookup_key: str, wanted: dict[str, Any]) -> Any:
    """The active price under ``lookup_key`` matching ``wanted``; created if missing or changed."""
    found = client.v1.prices.list({"lookup_keys": [lookup_key], "limit": 1}).data
    if found and _same_price(found[0], wanted):
        price = found[0]
    else:
        price = client.v1.prices.create(
            {**wanted, "lookup_key": lookup_key, "transfer_lookup_key": True}
        )
        if found and found[0].active:
            mirror(dj.Price, client.v1.prices.update(found[0].id, {"active": False}))
    mirror(dj.Price, price)
    return price


def meter_ensure(*, event_name: str, display_name: str, client: stripe.StripeClient) -> Any:
    """The active Billing Meter for ``event_name`` (sum of ``value``), created when missing."""
    for meter in client.v1.billing.meters.list({"limit": 100}).auto_paging_iter():
        if meter.event_name == event_name:
            if meter.status != "active":
                meter = client.v1.billing.meters.reactivate(meter.id)
            return meter
    return client.v1.billing.meters.create(
        {
            "display_name": display_name,
            "event_name": event_name,
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "value_settings": {"event_payload_key": "value"},
        }
    )


def plan_has_meter(plan: Plan) -> bool:
    """Whether the plan's usage reaches Stripe through a Billing Meter."""
    return plan.billing_model == BillingModel.USAGE or (
        plan.billing_model == BillingModel.SUBSCRIPTION and plan.overage == Plan.Overage.METERED
    )


def plan_stripe_sync(*, plan: Plan, client: stripe.StripeClient | None = None) -> SyncedPrices:
    """Create or update the plan's product, recurring price and (metered plans) meter and price."""
    if plan.billing_model not in (BillingModel.SUBSCRIPTION, BillingModel.USAGE):
        return SyncedPrices(price_id=None)
    client = client or stripe_client()
    product = _product_ensure(
        client, product_id=plan_lookup_key(plan), name=plan.name, active=plan.active
    )
    base = {"currency": plan.currency, "product": product.id}
    price_id = None
    if plan.price_cents is not None:
        licensed = _price_ensure(
            client,
            lookup_key=plan_lookup_key(plan),
            wanted={
                **base,
                "unit_amount": plan.price_cents,
                "recurring": {"interval": plan.interval, "usage_type": "licensed"},
            },
        )
        price_id = licensed.id
    metered_id = None
    if plan_has_meter(plan):
        event_name = plan.stripe_meter_event_name or f"mcpb_{plan.slug}_usage"
        meter = meter_ensure(
            event_name=event_name, display_name=f"{plan.name} usage", client=client
        )
        metered = _price_ensure(
            client,
            lookup_key=plan_metered_lookup_key(plan),
            wanted={
                **base,
                "unit_amount_decimal": MICROCENT_IN_CENTS,
                "recurring": {
                    "interval": plan.interval,
                    "usage_type": "metered",
                    "meter": meter.id,
                },
            },
        )
        metered_id = metered.id
        if plan.stripe_meter_event_name != event_name:
            Plan.objects.filter(pk=plan.pk).update(stripe_meter_event_name=event_name)
            plan.stripe_meter_event_name = event_name
    # A usage-based plan without a fee subscribes to its metered price alone.
    price_id = price_id or metered_id
    if price_id and plan.stripe_price_id != price_id:
        Plan.objects.filter(pk=plan.pk).update(stripe_price_id=price_id)
        plan.stripe_price_id = price_id
    return SyncedPrices(price_id=price_id, metered_price_id=metered_id)


def credit_pack_stripe_sync(
    *, pack: CreditPack, client: stripe.StripeClient | None = None
) -> SyncedPrices:
    """Create or update the pack's product and one-time price."""
    client = client or stripe_client()
    product = _product_ensure(
        client, product_id=pack_lookup_key(pack), name=pack.name, active=pack.active
    )
    price = _price_ensure(
        client,
        lookup_key=pack_lookup_key(pack),
        wanted={"currency": pack.currency, "product": product.id, "unit_amount": pack.price_cents},
    )
    if pack.stripe_price_id != price.id:
        CreditPack.objects.filter(pk=pack.pk).update(stripe_price_id=price.id)
        pack.stripe_price_id = price.id
    return SyncedPrices(price_id=price.id)


def catalog_stripe_sync(*, client: stripe.StripeClient | None = None) -> dict[str, SyncedPrices]:
    """Sync every plan and credit pack; returns the prices by ``plan:<slug>`` / ``pack:<slug>``."""
    client = client or stripe_client()
    synced = {f"plan:{p.slug}": plan_stripe_sync(plan=p, client=client) for p in Plan.objects.all()}
    for pack in CreditPack.objects.all():
        synced[f"pack:{pack.slug}"] = credit_pack_stripe_sync(pack=pack, client=client)
    return synced


def plan_for_price(*, price_id: str, lookup_key: str | None) -> Plan | None:
    """The plan a Stripe price belongs to: by price id, then by our lookup key."""
    plan = Plan.objects.filter(stripe_price_id=price_id).first()
    if plan is not None or not (lookup_key or "").startswith("mcpb_plan_"):
        return plan
    slug = lookup_key.removeprefix("mcpb_plan_").removesuffix("_metered")
    return Plan.objects.filter(slug=slug).first()
