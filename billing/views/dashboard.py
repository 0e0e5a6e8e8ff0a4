"""The start page: the public pricing for visitors, the dashboard for customers."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from billing.selectors import customer_dashboard, plans_public, tools_offered
from customers.access import customer_of, customer_required


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """``/``: a customer's dashboard, or the pricing page for everyone else."""
    if customer_of(request.user) is not None:
        return redirect("site:dashboard")
    return pricing(request)


@require_GET
def pricing(request: HttpRequest) -> HttpResponse:
    """The plans, what each includes, and every tool with its price."""
    context = {
        "plans": plans_public(),
        "tools": tools_offered(),
        "mcp_url": f"{settings.SITE_URL.rstrip('/')}/mcp",
        "signup_plan": settings.BILLING_SIGNUP_PLAN,
    }
    return render(request, "billing/pricing.html", context)


@customer_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """Balance, the period's calls and spend, the last calls, and what needs doing."""
    customer = request.customer
    context = {"customer": customer, "dashboard": customer_dashboard(customer=customer)}
    return render(request, "billing/dashboard.html", context)
