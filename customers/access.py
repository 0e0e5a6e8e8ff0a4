"""Who may open a customer page: a signed-in user with a billing customer.

Every customer page is wrapped in ``customer_required``; it puts the customer on
``request.customer`` and views read and write only through it, so no id in a URL
or a form reaches another customer's rows.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from customers.models import Customer


def customer_of(user) -> Customer | None:
    """The billing customer of a signed-in user, or None (an operator's account)."""
    if not user.is_authenticated:
        return None
    return Customer.objects.select_related("plan").filter(user=user).first()


def customer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Sign-in first; staff without a customer go to the admin, other users see why not."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        customer = customer_of(request.user)
        if customer is None:
            if request.user.is_staff:
                messages.info(
                    request,
                    "Your account is an operator's, without customer pages: this is the admin.",
                )
                return redirect("admin:index")
            return render(request, "customers/no_customer.html", status=403)
        request.customer = customer
        return view(request, *args, **kwargs)

    return wrapped
