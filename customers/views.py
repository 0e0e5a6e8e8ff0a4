"""The customer's API keys: create (the secret shown once), rotate, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from customers.access import customer_required
from customers.forms import ApiKeyForm
from customers.models import ApiKey, Customer
from customers.selectors import api_key_get, api_key_list
from customers.services import IssuedKey, api_key_create, api_key_revoke, api_key_rotate


def _currency(customer: Customer) -> str:
    return customer.plan.currency if customer.plan else "usd"


def _page(
    request: HttpRequest, form: ApiKeyForm, issued: IssuedKey | None = None, status: int = 200
) -> HttpResponse:
    customer = request.customer
    context = {
        "customer": customer,
        "currency": _currency(customer),
        "keys": api_key_list(customer=customer),
        "form": form,
        "issued": issued,
    }
    return render(request, "customers/keys.html", context, status=status)


def _key(request: HttpRequest, key_id: int) -> ApiKey:
    key = api_key_get(customer=request.customer, key_id=key_id)
    if key is None:
        raise Http404("No such API key.")
    return key


@customer_required
@require_http_methods(["GET", "POST"])
def keys(request: HttpRequest) -> HttpResponse:
    """The keys; POST creates one and shows its secret, this once."""
    currency = _currency(request.customer)
    if request.method != "POST":
        return _page(request, ApiKeyForm(currency=currency))
    form = ApiKeyForm(request.POST, currency=currency)
    if not form.is_valid():
        return _page(request, form, status=400)
    issued = api_key_create(
        customer=request.customer,
        name=form.cleaned_data["name"],
        expires_at=form.expires_at,
        daily_budget_microcents=form.daily_budget_microcents,
    )
    return _page(request, ApiKeyForm(currency=currency), issued=issued, status=201)


@customer_required
@require_POST
def key_rotate(request: HttpRequest, key_id: int) -> HttpResponse:
    """Revoke a key and issue its replacement (same name and limits); shows the new secret."""
    key = _key(request, key_id)
    if key.revoked_at is not None:
        messages.error(request, "A revoked key cannot be rotated: create a new one.")
        return redirect("customers:keys")
    issued = api_key_rotate(api_key=key)
    return _page(request, ApiKeyForm(currency=_currency(request.customer)), issued=issued)


@customer_required
@require_POST
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    """Revoke a key: calls made with it are refused from now on."""
    key = _key(request, key_id)
    api_key_revoke(api_key=key)
    messages.success(request, f"The key “{key.name}” ({key.prefix}…) is revoked.")
    return redirect("customers:keys")
