"""Reads of customers and their API keys."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from customers.models import ApiKey, Customer


def api_key_status(api_key: ApiKey, *, now: datetime | None = None) -> str:
    """ "active", "expired" or "revoked", as the gateway decides it."""
    now = now or timezone.now()
    if api_key.revoked_at is not None and api_key.revoked_at <= now:
        return "revoked"
    if api_key.expires_at is not None and api_key.expires_at <= now:
        return "expired"
    return "active"


def api_key_list(*, customer: Customer) -> list[ApiKey]:
    """The customer's keys: working ones first, then the newest."""
    keys = list(ApiKey.objects.filter(customer=customer).order_by("-created_at", "-id"))
    now = timezone.now()
    for key in keys:
        key.status = api_key_status(key, now=now)
    return sorted(keys, key=lambda k: k.status != "active")


def api_key_get(*, customer: Customer, key_id) -> ApiKey | None:
    """One of the customer's keys by id; None when there is none or it is another's."""
    try:
        key_id = int(key_id)
    except (TypeError, ValueError):
        return None
    return ApiKey.objects.filter(customer=customer, pk=key_id).first()


def customer_list() -> QuerySet[Customer]:
    """Every customer with what a listing shows (plan); filtered by the caller."""
    return Customer.objects.select_related("plan")


def customer_api_keys(*, customer: Customer) -> QuerySet[ApiKey]:
    """The customer's API keys, revoked ones too, as a query (for the API's paged lists)."""
    return ApiKey.objects.filter(customer=customer)
