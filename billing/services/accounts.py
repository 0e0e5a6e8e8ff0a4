"""Accounts that sign up on the site: each gets its billing customer."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction

from billing.models import Plan
from customers.models import Customer
from customers.services import customer_create
from mcpbilling.errors import ApplicationError


def signup_plan() -> Plan | None:
    """The plan new sign-ups start on (``BILLING_SIGNUP_PLAN``), or None when it is not offered."""
    slug = settings.BILLING_SIGNUP_PLAN
    return Plan.objects.filter(slug=slug, active=True).first() if slug else None


def customer_email_taken(*, email: str) -> bool:
    """Whether a customer with this email already belongs to another sign-in."""
    return Customer.objects.filter(email=email.strip().lower(), user__isnull=False).exists()


@transaction.atomic
def customer_sign_up(*, user, now: datetime | None = None) -> Customer:
    """The billing customer of a new sign-in, on the sign-up plan.

    A customer the operator created earlier with the same email (and no sign-in
    yet) becomes this sign-in's. Sign-in waits for the email to be verified, so
    only the owner of the address ever reaches it.
    """
    email = user.email.strip().lower()
    existing = Customer.objects.select_for_update().filter(email=email).first()
    if existing is not None:
        if existing.user_id not in (None, user.pk):
            raise ApplicationError("customer_exists", "This email belongs to another account.")
        existing.user = user
        existing.save(update_fields=["user", "updated_at"])
        return existing
    return customer_create(email=email, plan=signup_plan(), user=user, now=now)
