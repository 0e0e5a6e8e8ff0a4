"""The customer's payment pages: buy credits, choose a plan, the card, invoices and receipts.

Card entry, subscription changes and invoice payment happen on Stripe's own pages
(Checkout, the Customer Portal); these pages start them and show what came back.
"""

from __future__ import annotations

import stripe
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from billing.models import CreditPack, Plan
from billing.selectors import (
    billing_document_url,
    billing_documents,
    credit_history,
    credit_packs_on_sale,
    customer_balance,
    customer_card,
    plans_public,
)
from billing.services.checkout import (
    SUBSCRIBED,
    checkout_credit_pack_start,
    plan_choose,
    portal_start,
)
from customers.access import customer_required
from customers.models import Customer
from mcpbilling.errors import ApplicationError

RETURN_MESSAGES = {
    "success": (messages.SUCCESS, "Payment received. It shows here once Stripe confirms it."),
    "cancel": (messages.INFO, "Checkout cancelled: nothing was charged."),
    "portal": (messages.INFO, "Back from the billing portal. Changes show here once applied."),
}


def _url(request: HttpRequest, name: str, outcome: str) -> str:
    """An absolute URL of one of these pages that says how the visit to Stripe ended."""
    return f"{request.build_absolute_uri(reverse(name))}?return={outcome}"


def _returns(request: HttpRequest, page: str) -> dict[str, str]:
    """Where Stripe's Checkout sends the customer back to ``page``: paid, or cancelled."""
    return {
        "success_url": _url(request, page, "success"),
        "cancel_url": _url(request, page, "cancel"),
    }


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


@customer_required
@require_http_methods(["GET", "POST"])
def credits(request: HttpRequest) -> HttpResponse:
    """Credit packs for sale and the balance; POST buys one through Checkout."""
    customer = request.customer
    if request.method == "POST":
        pack = get_object_or_404(CreditPack, slug=request.POST.get("pack", ""), active=True)
        return _to_stripe(
            request,
            lambda: checkout_credit_pack_start(
                customer=customer, pack=pack, **_returns(request, "billing:credits")
            ),
            "billing:credits",
        )
    _returned(request)
    context = {
        "customer": customer,
        "packs": credit_packs_on_sale(),
        "balance": customer_balance(customer=customer),
        "history": credit_history(customer=customer),
    }
    return render(request, "billing/credits.html", context)


@customer_required
@require_http_methods(["GET", "POST"])
def plans(request: HttpRequest) -> HttpResponse:
    """Public plans with the current one marked; POST subscribes, switches or opens the portal."""
    customer = request.customer
    if request.method == "POST":
        plan = get_object_or_404(Plan, slug=request.POST.get("plan", ""), active=True, public=True)
        return _to_stripe(
            request,
            lambda: plan_choose(
                customer=customer,
                plan=plan,
                return_url=_url(request, "billing:plans", "portal"),
                **_returns(request, "billing:plans"),
            ),
            "billing:plans",
        )
    _returned(request)
    selected = request.GET.get("plan", "")
    context = {
        "customer": customer,
        "plans": [
            {"plan": p, "current": p.pk == customer.plan_id, "selected": p.slug == selected}
            for p in plans_public()
        ],
        "subscribed": customer.subscription_status in SUBSCRIBED,
    }
    return render(request, "billing/plans.html", context)


@customer_required
@require_http_methods(["GET", "POST"])
def payment_method(request: HttpRequest) -> HttpResponse:
    """The saved card; POST opens the Customer Portal, where the card is added or replaced."""
    customer = request.customer
    if request.method == "POST":
        return _start_portal(request, customer, "billing:payment-method")
    _returned(request)
    context = {"customer": customer, "card": customer_card(customer=customer)}
    return render(request, "billing/payment_method.html", context)


@customer_required
@require_http_methods(["GET", "POST"])
def portal(request: HttpRequest) -> HttpResponse:
    """Open the Customer Portal (subscription, card, invoices); a link or a form may lead here."""
    return _start_portal(request, request.customer, "billing:invoices")


def _start_portal(request: HttpRequest, customer: Customer, back: str) -> HttpResponse:
    return_url = _url(request, back, "portal")
    return _to_stripe(request, lambda: portal_start(customer=customer, return_url=return_url), back)


@customer_required
@require_GET
def invoices(request: HttpRequest) -> HttpResponse:
    """Subscription invoices and payment receipts, from dj-stripe's mirror of Stripe."""
    _returned(request)
    context = {
        "customer": request.customer,
        "documents": billing_documents(customer=request.customer),
    }
    return render(request, "billing/invoices.html", context)


@customer_required
@require_GET
def document(request: HttpRequest, kind: str, document_id: str, pdf: bool = False) -> HttpResponse:
    """One of the customer's invoices or receipts: off to its Stripe-hosted page or PDF."""
    url = billing_document_url(
        customer=request.customer, kind=kind, document_id=document_id, pdf=pdf
    )
    if url is None:
        raise Http404("No such invoice or receipt.")
    return redirect(url)
