"""Customers and their API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import CreditAccount, OutboxMessage, Plan
from billing.periods import period_containing
from customers.models import ApiKey, Customer
from mcpbilling.errors import ApplicationError

KEY_PREFIX = "mcpb_"
PREFIX_CHARS = 12  # random characters after "mcpb_" in the public prefix
SECRET_BYTES = 32


def _months(plan: Plan | None) -> int:
    return 12 if plan is not None and plan.interval == Plan.Interval.YEAR else 1


@transaction.atomic
def customer_create(
    *,
    email: str,
    name: str = "",
    plan: Plan | None = None,
    user=None,
    now: datetime | None = None,
) -> Customer:
    """Create a customer with its credit account; the first period starts now."""
    now = now or timezone.now()
    email = email.strip().lower()
    if Customer.objects.filter(email=email).exists():
        raise ApplicationError("customer_exists", f"A customer with email {email} exists.")
    start, end = period_containing(now, now, months=_months(plan))
    customer = Customer.objects.create(
        email=email, name=name, plan=plan, user=user, period_start=start, period_end=end
    )
    CreditAccount.objects.create(customer=customer)
    # The Stripe customer is created through the outbox: a Stripe outage never
    # blocks sign-up.
    _stripe_sync_enqueue(customer, identifier=f"customer_sync:{customer.pk}", now=now)
    return customer


def _stripe_sync_enqueue(customer: Customer, *, identifier: str, now: datetime) -> None:
    """Queue the creation or update of the customer's Stripe customer (name, email)."""
    OutboxMessage.objects.create(
        kind=OutboxMessage.Kind.CUSTOMER_SYNC,
        identifier=identifier,
        customer=customer,
        payload={"email": customer.email, "name": customer.name},
        next_attempt_at=now,
    )


# Statuses an operator sets; past_due follows Stripe, canceled is customer_deactivate's.
OPERATOR_STATUSES = (Customer.Status.ACTIVE, Customer.Status.SUSPENDED)
# Stripe subscription statuses that still bill the customer.
LIVE_SUBSCRIPTION_STATUSES = ("active", "trialing", "past_due", "unpaid", "incomplete")


@transaction.atomic
def customer_update(
    *,
    customer: Customer,
    now: datetime | None = None,
    **changes,
) -> Customer:
    """Change a customer's ``email``, ``name``, ``plan``, ``status`` (active or suspended)
    or ``daily_budget_microcents``; Stripe hears of a new email or name through the outbox.
    """
    now = now or timezone.now()
    unknown = set(changes) - {"email", "name", "plan", "status", "daily_budget_microcents"}
    if unknown:
        raise ValueError(f"customer_update cannot change {sorted(unknown)}")
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if "email" in changes:
        changes["email"] = changes["email"].strip().lower()
        taken = Customer.objects.filter(email=changes["email"]).exclude(pk=customer.pk)
        if taken.exists():
            raise ApplicationError(
                "customer_exists", f"A customer with email {changes['email']} exists."
            )
    if "status" in changes and changes["status"] != customer.status:
        if changes["status"] not in OPERATOR_STATUSES:
            raise ApplicationError(
                "invalid_status",
                f"An operator sets the status to {' or '.join(OPERATOR_STATUSES)}; "
                "past_due follows Stripe and a customer is canceled by deactivating it.",
            )
        if customer.status == Customer.Status.PAST_DUE:
            raise ApplicationError(
                "invalid_status", "A past-due customer becomes active when Stripe is paid."
            )
    if "plan" in changes and changes["plan"] != customer.plan:
        customer_plan_change(customer=customer, plan=changes.pop("plan"))
    changes.pop("plan", None)
    changed = [name for name, value in changes.items() if getattr(customer, name) != value]
    for name in changed:
        setattr(customer, name, changes[name])
    if changed:
        customer.save(update_fields=[*changed, "updated_at"])
    if {"email", "name"} & set(changed):
        _stripe_sync_enqueue(
            customer, identifier=f"customer_sync:{customer.pk}:{uuid.uuid4()}", now=now
        )
    _credentials_forget_on_commit(customer_id=customer.pk)
    return customer


@transaction.atomic
def customer_deactivate(*, customer: Customer, now: datetime | None = None) -> Customer:
    """Stop a customer for good: status canceled, every API key revoked.

    Nothing is erased: the ledger, the usage and the keys stay as records.
    Refused while a Stripe subscription still bills the customer (cancel it first).
    """
    now = now or timezone.now()
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.subscription_status in LIVE_SUBSCRIPTION_STATUSES:
        raise ApplicationError(
            "subscription_active",
            f"The customer's Stripe subscription is {customer.subscription_status}; "
            "cancel it first (POST /api/v1/subscriptions/{id}/cancel/).",
        )
    if customer.status != Customer.Status.CANCELED:
        customer.status = Customer.Status.CANCELED
        customer.save(update_fields=["status", "updated_at"])
    for api_key in customer.api_keys.filter(revoked_at__isnull=True):
        api_key_revoke(api_key=api_key, now=now)
    _credentials_forget_on_commit(customer_id=customer.pk)
    return customer


def _credentials_forget_on_commit(*, customer_id: int | None = None, prefix: str | None = None):
    """Drop the gateway's cached lookups once the transaction commits."""
    # customers.authentication imports this module (key hashing), hence the late import.
    from customers.authentication import credentials_forget

    transaction.on_commit(lambda: credentials_forget(customer_id=customer_id, prefix=prefix))


def customer_period_current(*, customer: Customer, now: datetime | None = None) -> Customer:
    """Roll the customer's period forward when ``now`` is past its end; returns the customer.

    Concurrent callers race on a conditional update, so exactly one of them
    moves the period and the others reload what it wrote.
    """
    now = now or timezone.now()
    if customer.period_start <= now < customer.period_end:
        return customer
    start, end = period_containing(customer.period_start, now, months=_months(customer.plan))
    Customer.objects.filter(pk=customer.pk, period_end=customer.period_end).update(
        period_start=start, period_end=end, updated_at=now
    )
    customer.refresh_from_db(fields=["period_start", "period_end"])
    return customer


def customer_plan_change(*, customer: Customer, plan: Plan) -> Customer:
    """Put the customer on ``plan`` from now on; counters of the current period carry over."""
    Customer.objects.filter(pk=customer.pk).update(plan=plan, updated_at=timezone.now())
    customer.plan = plan
    return customer


# --- API keys -------------------------------------------------------------


@dataclass(frozen=True)
class IssuedKey:
    """A key as issued: ``secret`` is the whole key, shown once and never stored."""

    api_key: ApiKey
    secret: str


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_prefix_of(raw_key: str) -> str | None:
    """The public prefix of a raw key, or None when it does not look like one of ours."""
    if not raw_key.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = raw_key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != PREFIX_CHARS or not secret:
        return None
    return KEY_PREFIX + prefix


def api_key_matches(api_key: ApiKey, raw_key: str) -> bool:
    """Whether ``raw_key`` is this key's secret, compared in constant time."""
    return hmac.compare_digest(api_key.secret_hash, api_key_hash(raw_key))


def api_key_create(
    *,
    customer: Customer,
    name: str = "default",
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    daily_budget_microcents: int | None = None,
) -> IssuedKey:
    """Issue a new key; the returned secret is the only copy. A canceled customer gets none."""
    if customer.status == Customer.Status.CANCELED:
        raise ApplicationError(
            "customer_inactive", "This customer is deactivated; it gets no new API keys."
        )
    for _ in range(5):
        prefix = KEY_PREFIX + secrets.token_hex(PREFIX_CHARS // 2)
        raw = f"{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    customer=customer,
                    name=name,
                    prefix=prefix,
                    secret_hash=api_key_hash(raw),
                    scopes=["*"] if scopes is None else list(scopes),
                    expires_at=expires_at,
                    daily_budget_microcents=daily_budget_microcents,
                )
        except IntegrityError:  # a prefix collision: draw again
            continue
        return IssuedKey(api_key=key, secret=raw)
    raise ApplicationError("key_prefix_exhausted", "Could not draw a unique key prefix.")


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, now: datetime | None = None) -> ApiKey:
    """Revoke a key; authentication stops accepting it at once."""
    if api_key.revoked_at is None:
        api_key.revoked_at = now or timezone.now()
        api_key.save(update_fields=["revoked_at"])
        # Drop the gateway's cached lookup too, so the key stops at once.
        _credentials_forget_on_commit(prefix=api_key.prefix)
    return api_key


@transaction.atomic
def api_key_rotate(*, api_key: ApiKey, now: datetime | None = None) -> IssuedKey:
    """Revoke a key and issue its replacement with the same name, scopes and limits.

    A key that expires gets a replacement with the same lifetime from now, so
    rotating an expired key gives a working one. A revoked key is not rotated.
    """
    if api_key.revoked_at is not None:
        raise ApplicationError(
            "key_revoked", "This key is revoked; issue a new key instead of rotating it."
        )
    now = now or timezone.now()
    expires_at = api_key.expires_at
    if expires_at is not None:
        expires_at = now + (expires_at - api_key.created_at)
    api_key_revoke(api_key=api_key, now=now)
    return api_key_create(
        customer=api_key.customer,
        name=api_key.name,
        scopes=api_key.scopes,
        expires_at=expires_at,
        daily_budget_microcents=api_key.daily_budget_microcents,
    )
