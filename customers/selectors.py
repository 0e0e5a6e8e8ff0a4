"""Reads of customers and their API keys."""

from __future__ import annotations

from django.db.models import QuerySet

from customers.models import ApiKey, Customer


def customer_list() -> QuerySet[Customer]:
    """Every customer with what a listing shows (plan); filtered by the caller."""
    return Customer.objects.select_related("plan")


def api_key_list(*, customer: Customer) -> QuerySet[ApiKey]:
    """The customer's API keys, revoked ones too."""
    return ApiKey.objects.filter(customer=customer)
