"""The demo catalogue and customer that ``seed_demo`` creates (idempotent)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from billing.models import BillingModel, CreditPack, Plan
from billing.services.ledger import credit_grant
from customers.models import ApiKey, Customer
from customers.services import api_key_create, api_key_matches, api_key_revoke, customer_create
from mcpbilling.gateway.registry import tools_sync_python

CENT = 1_000_000  # microcents
DOLLAR = 100 * CENT
DEMO_EMAIL = "demo@example.com"
DEMO_CREDITS = 1_000

PLANS = [
    {
        "slug": "free",
        "name": "Free",
        "billing_model": BillingModel.FREEMIUM,
        "description": "100 free calls a month, then upgrade.",
        "free_calls": 100,
        "free_tier_action": Plan.FreeTierAction.REFUSE,
    },
    {
        "slug": "credits",
        "name": "Prepaid credits",
        "billing_model": BillingModel.CREDITS,
        "description": "Buy credit packs; each call spends credits.",
    },
    {
        "slug": "payg",
        "name": "Pay as you go",
        "billing_model": BillingModel.PER_CALL,
        "description": "Pay per call on your card; collected every $10.",
        "exposure_limit_microcents": 50 * DOLLAR,
        "collection_threshold_microcents": 10 * DOLLAR,
    },
    {
        "slug": "pro",
        "name": "Pro",
        "billing_model": BillingModel.SUBSCRIPTION,
        "description": "$29 a month with 10,000 calls included; overage billed per call.",
        "price_cents": 2900,
        "included_calls": 10_000,
        "overage": Plan.Overage.METERED,
        "stripe_meter_event_name": "mcpbilling_usage",
        "exposure_limit_microcents": 100 * DOLLAR,
    },
    {
        "slug": "metered",
        "name": "Metered",
        "billing_model": BillingModel.USAGE,
        "description": "Every call billed at the end of the month through Stripe.",
        "stripe_meter_event_name": "mcpbilling_usage",
        "exposure_limit_microcents": 100 * DOLLAR,
    },
]

PACKS = [
    {"slug": "starter", "name": "Starter", "credits": 500, "price_cents": 500},
    {"slug": "builder", "name": "Builder", "credits": 5_000, "price_cents": 4_000},
    {
        "slug": "scale",
        "name": "Scale",
        "credits": 50_000,
        "price_cents": 30_000,
        "expires_after_days": 365,
    },
]


@dataclass(frozen=True)
class DemoResult:
    customer: Customer
    api_key: str
    admin_password: str | None
    customer_password: str | None = None


def catalogue_seed() -> None:
    """Create or update the demo plans, credit packs and tool prices."""
    for fields in PLANS:
        Plan.objects.update_or_create(
            slug=fields["slug"], defaults={"rate_limit_per_minute": 600, **fields}
        )
    Plan.objects.filter(slug="free").update(upgrade_plan=Plan.objects.get(slug="pro"))
    for fields in PACKS:
        CreditPack.objects.update_or_create(slug=fields["slug"], defaults=fields)
    # The gateway's Python tools, each priced by its decorator unless already priced.
    tools_sync_python()


def _demo_key_file() -> Path:
    return Path(settings.RUN_DIR) / "demo_api_key"


def _demo_key(customer: Customer) -> str:
    """The demo key kept in .run/demo_api_key, issued again when it no longer works."""
    path = _demo_key_file()
    if path.exists():
        raw = path.read_text().strip()
        for key in ApiKey.objects.filter(customer=customer, name="demo", revoked_at=None):
            if api_key_matches(key, raw):
                return raw
    for key in ApiKey.objects.filter(customer=customer, name="demo", revoked_at=None):
        api_key_revoke(api_key=key)
    issued = api_key_create(customer=customer, name="demo")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(issued.secret + "\n")
    os.chmod(path, 0o600)
    return issued.secret


def _demo_email_verified(customer: Customer) -> None:
    """The demo sign-in's email counts as verified, so it can sign in at once."""
    if customer.user_id is not None:
        EmailAddress.objects.update_or_create(
            user_id=customer.user_id,
            email=customer.email,
            defaults={"verified": True, "primary": True},
        )


def _demo_login(customer: Customer) -> str | None:
    """A sign-in (demo@example.com) for the demo customer's pages; its password is printed once."""
    if not settings.DEBUG or customer.user_id is not None:
        _demo_email_verified(customer)
        return None
    users = get_user_model()
    password = secrets.token_urlsafe(12)
    user = users.objects.filter(username="demo").first()
    if user is None:
        user = users.objects.create_user("demo", DEMO_EMAIL, password)
    else:
        user.set_password(password)
        user.save(update_fields=["password"])
    customer.user = user
    customer.save(update_fields=["user"])
    _demo_email_verified(customer)
    return password


def _demo_admin() -> str | None:
    """A superuser ``admin`` for the local demo; its password is printed once, when created."""
    users = get_user_model()
    if not settings.DEBUG or users.objects.filter(is_superuser=True).exists():
        return None
    password = secrets.token_urlsafe(12)
    users.objects.create_superuser("admin", "admin@example.com", password)
    return password


@transaction.atomic
def demo_seed() -> DemoResult:
    """Everything the demo needs: catalogue, a customer with credits and a working key."""
    catalogue_seed()
    customer = Customer.objects.filter(email=DEMO_EMAIL).first()
    if customer is None:
        customer = customer_create(
            email=DEMO_EMAIL, name="Demo customer", plan=Plan.objects.get(slug="credits")
        )
    credit_grant(
        customer_id=customer.pk,
        credits=DEMO_CREDITS,
        idempotency_key=f"demo-initial:{customer.pk}",
        description="Demo credits",
    )
    return DemoResult(
        customer=customer,
        api_key=_demo_key(customer),
        admin_password=_demo_admin(),
        customer_password=_demo_login(customer),
    )
