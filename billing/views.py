"""The customer's billing pages: buy credits, choose a plan, manage the card (Stripe-hosted)."""

from __future__ import annotations

import stripe
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.views.decorators.http import require_http_methods, require_POST

from billing.models import CreditPack, Plan
from billing.selectors import credit_balance
from billing.services.checkout import (
    SUBSCRIBED,
    checkout_credit_pack_start,
    plan_choose,
    portal_start,
)
from customers.models import Customer
from mcpbilling.errors import ApplicationError

LOGIN_URL = reverse_lazy("login")
RETURN_MESSAGES = {
    "success": (messages.SUCCESS, "Payment received. It shows here once Stripe confirms it."),
    "cancel": (messages.INFO, "Checkout cancelled: nothing was charged."),
    "portal": (messages.INFO, "Back from the billing portal. Changes show here once applied."),
}


def money(cents: int | None, currency: str) -> str:
    """Cents as the customer reads them: "10.00 USD"."""
    return "" if cents is None else f"{cents // 100}.{cents % 100:02d} {currency.upper()}"


def _customer(request: HttpRequest) -> Customer:
    customer = getattr(request.user, "billing_customer", None)
    if customer is None:
        raise PermissionDenied("This account has no billing customer.")
    return customer


def _url(request: HttpRequest, name: str, outcome: str) -> str:
    """An absolute URL of one of these pages that says how the visit to Stripe ended."""
    return f"{request.build_absolute_uri(reverse(name))}?return={outcome}"


def _see_other(url: str) -> HttpResponseRedirect:
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


def _returned(request: HttpRequest) -> None:
    level_text = RETURN_MESSAGES.get(request.GET.get("return", ""))
    if level_text:
        messages.add_message(request, *level_text)


def _to_stripe(request: HttpRequest, start, back: str) -> HttpResponse:
    """Send the customer to the Stripe page ``start()`` opens, or back with the error."""
    try:
        url = start()
    except ApplicationError as exc:
        messages.error(request, exc.message)
    except stripe.StripeError:
        messages.error(request, "Payments are unavailable right now; please try again shortly.")
    else:
        if url:
            return _see_other(url)
        messages.success(request, "Your plan has been changed.")
    return redirect(back)


@login_required(login_url=LOGIN_URL)
@require_http_methods(["GET", "POST"])
def credits(request: HttpRequest) -> HttpResponse:
    """Credit packs for sale and the balance; POST buys one through Checkout."""
    customer = _customer(request)
    if request.method == "POST":
        pack = get_object_or_404(CreditPack, slug=request.POST.get("pack", ""), active=True)
        return _to_stripe(
            request,
            lambda: checkout_credit_pack_start(
                customer=customer,
                pack=pack,
                success_url=_url(request, "billing:credits", "success"),
                cancel_url=_url(request, "billing:credits", "cancel"),
            ),
            "billing:credits",
        )
    _returned(request)
    context = {
        "customer": customer,
        "packs": [
            (p, money(p.price_cents, p.currency)) for p in CreditPack.objects.filter(active=True)
        ],
        "balance": credit_balance(customer_id=customer.pk, plan=customer.plan),
    }
    return render(request, "billing/credits.html", context)


@login_required(login_url=LOGIN_URL)
@require_http_methods(["GET", "POST"])
def plans(request: HttpRequest) -> HttpResponse:
    """Public plans with the current one marked; POST subscribes, switches or opens the portal."""
    customer = _customer(request)
    if request.method == "POST":
        plan = get_object_or_404(Plan, slug=request.POST.get("plan", ""), active=True, public=True)
        return _to_stripe(
            request,
            lambda: plan_choose(
                customer=customer,
                plan=plan,
                success_url=_url(request, "billing:plans", "success"),
                cancel_url=_url(request, "billing:plans", "cancel"),
                return_url=_url(request, "billing:plans", "portal"),
            ),
            "billing:plans",
        )
    _returned(request)
    context = {
        "customer": customer,
        "plans": [
            (p, money(p.price_cents, p.currency))
            for p in Plan.objects.filter(active=True, public=True)
        ],
        "selected": request.GET.get("plan", ""),
        "subscribed": customer.subscription_status in SUBSCRIBED,
    }
    return render(request, "billing/plans.html", context)


@login_required(login_url=LOGIN_URL)
@require_http_methods(["GET", "POST"])
def payment_method(request: HttpRequest) -> HttpResponse:
    """The saved card; POST opens the Customer Portal, where the card is added or replaced."""
    customer = _customer(request)
    if request.method == "POST":
        return _start_portal(request, customer, "billing:payment-method")
    _returned(request)
    return render(request, "billing/payment_method.html", {"customer": customer})


@login_required(login_url=LOGIN_URL)
@require_POST
def portal(request: HttpRequest) -> HttpResponse:
    """Open the Customer Portal (subscription, card, invoices)."""
    return _start_portal(request, _customer(request), "billing:plans")


def _start_portal(request: HttpRequest, customer: Customer, back: str) -> HttpResponse:
    return_url = _url(request, back, "portal")
    return _to_stripe(request, lambda: portal_start(customer=customer, return_url=return_url), back)
