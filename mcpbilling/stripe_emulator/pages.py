"""Hosted pages: Checkout (``/c/pay/{id}``), the portal (``/p/session/{id}``), invoices
(``/i/{id}``) and payment receipts (``/r/{charge id}``, a charge's ``receipt_url``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from . import cards, forms, templates
from .context import Ctx
from .errors import StripeError
from .objects import ACCOUNT_NAME, format_amount
from .resources import checkout, portal
from .resources.billing import TIMES

if TYPE_CHECKING:
    from .app import Runtime

Obj = dict[str, Any]


def routes() -> list[BaseRoute]:
    """The page routes."""
    return [
        Route("/c/pay/{session_id}", checkout_page, methods=["GET"]),
        Route("/c/pay/{session_id}", checkout_submit, methods=["POST"]),
        Route("/p/session/{session_id}", portal_page, methods=["GET"]),
        Route("/p/session/{session_id}", portal_submit, methods=["POST"]),
        Route("/i/{invoice_id}", invoice_page, methods=["GET"]),
        Route("/r/{charge_id}", receipt_page, methods=["GET"]),
    ]


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        templates.LAYOUT.substitute(title=escape(title), body=body), status_code=status
    )


def _message(
    heading: str, text: str, *, link: str | None = None, link_text: str = "", status: int = 200
) -> HTMLResponse:
    anchor = f'<p><a href="{escape(link)}">{escape(link_text)}</a></p>' if link else ""
    body = templates.MESSAGE.substitute(heading=escape(heading), text=escape(text), link=anchor)
    return _page(heading, body, status)


def _alert(kind: str, text: str | None) -> str:
    return f'<p class="{kind}" role="alert">{escape(text)}</p>' if text else ""


def _context(request: Request) -> tuple[Runtime, Ctx]:
    runtime: Runtime = request.app.state.runtime
    return runtime, runtime.ctx(request)


async def _form(request: Request) -> forms.Params:
    return forms.Params(forms.decode((await request.body()).decode("utf-8", errors="replace")))


def _date(timestamp: int | None) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%d %b %Y") if timestamp else "-"


# --- Checkout -------------------------------------------------------------------------
async def checkout_page(request: Request) -> Response:
    """The payment form of an open session, or what became of it."""
    runtime, ctx = _context(request)
    with runtime.store.lock:
        session = runtime.store.get("checkout.session", request.path_params["session_id"])
        if session is None:
            return _message("Not found", "There is no such checkout session.", status=404)
        checkout.refresh(ctx, session)
        return _checkout_view(session)


def _checkout_view(session: Obj, error: str | None = None, status: int = 200) -> HTMLResponse:
    if session["status"] == "complete":
        return _message("Payment complete", "Thank you: this checkout session is complete.")
    if session["status"] == "expired":
        return _message("Session expired", "This checkout session has expired.", status=410)
    lines = "".join(
        templates.LINE.substitute(
            description=escape(f"{item['description']} {TIMES} {item['quantity'] or 'usage'}"),
            amount=escape(format_amount(item["amount_total"], item["currency"])),
        )
        for item in session["_line_items"]
    )
    subscribing = session["mode"] == "subscription"
    cancel = session["cancel_url"]
    email = session["customer_email"] or ""
    body = templates.CHECKOUT.substitute(
        merchant=escape(ACCOUNT_NAME),
        heading="Subscribe" if subscribing else "Pay",
        message=_alert("error", error),
        lines=lines,
        total=escape(format_amount(session["amount_total"], session["currency"])),
        action=escape(f"/c/pay/{session['id']}"),
        email=escape(email),
        email_lock="readonly" if email or session["customer"] else "",
        submit="Subscribe" if subscribing else "Pay",
        cancel=f'<p><a href="{escape(cancel)}">Cancel and go back</a></p>' if cancel else "",
    )
    return _page("Checkout", body, status)


async def checkout_submit(request: Request) -> Response:
    """Pay with the submitted card: redirect to ``success_url``, or show the decline."""
    runtime, ctx = _context(request)
    form = await _form(request)
    with runtime.store.lock:
        session = runtime.store.get("checkout.session", request.path_params["session_id"])
        if session is None:
            return _message("Not found", "There is no such checkout session.", status=404)
        if checkout.refresh(ctx, session)["status"] != "open":
            return _checkout_view(session)
        try:
            card = cards.from_number(form.str("card_number") or "", param="card_number")
            error = checkout.complete(
                ctx, session, card, email=form.str("email"), name=form.str("name")
            )
        except StripeError as exc:
            error = exc
        if error is not None:
            return _checkout_view(session, error.message, status=error.status)
        success = session["success_url"]
    if not success:
        return RedirectResponse(f"/c/pay/{session['id']}", status_code=303)
    return RedirectResponse(
        success.replace("{CHECKOUT_SESSION_ID}", session["id"]), status_code=303
    )


# --- the customer portal ----------------------------------------------------------------
async def portal_page(request: Request) -> Response:
    """The customer's subscriptions, card and invoices, with what they may change."""
    runtime, ctx = _context(request)
    with runtime.store.lock:
        session = runtime.store.get("billing_portal.session", request.path_params["session_id"])
        if session is None:
            return _message("Not found", "There is no such portal session.", status=404)
        return _portal_view(ctx, session, notice=request.query_params.get("notice"))


def _portal_view(
    ctx: Ctx,
    session: Obj,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    store = ctx.store
    cus = store.require("customer", session["customer"])
    subs = store.all(
        "subscription", lambda s: s["customer"] == cus["id"] and s["status"] != "incomplete_expired"
    )
    pm = store.get("payment_method", cus["invoice_settings"]["default_payment_method"])
    card = f"{pm['card']['brand'].title()} •••• {pm['card']['last4']}" if pm else "No card on file"
    invoices = store.all("invoice", lambda i: i["customer"] == cus["id"] and i["status"] != "draft")
    body = templates.PORTAL.substitute(
        merchant=escape(ACCOUNT_NAME),
        customer=escape(cus["email"] or cus["name"] or cus["id"]),
        message=_alert("error", error) or _alert("notice", notice),
        subscriptions="".join(_subscription_card(ctx, session, sub) for sub in subs)
        or "<p>None.</p>",
        card=escape(card),
        action=escape(f"/p/session/{session['id']}"),
        invoices=_invoice_table(session, invoices),
        return_url=escape(session["return_url"] or "/"),
    )
    return _page("Billing", body, status)


def _subscription_card(ctx: Ctx, session: Obj, sub: Obj) -> str:
    item = sub["items"]["data"][0]
    plan = _price_label(ctx, item["price"])
    end = item["current_period_end"]
    if sub["status"] == "canceled":
        period = f"Ended {_date(sub['ended_at'])}"
    elif sub["cancel_at_period_end"]:
        period = f"Cancels on {_date(end)}"
    else:
        period = f"Renews on {_date(end)}"
    return templates.SUBSCRIPTION.substitute(
        plan=escape(plan),
        status=escape(sub["status"]),
        period=escape(period),
        actions="" if sub["status"] == "canceled" else _subscription_actions(ctx, session, sub),
    )


def _subscription_actions(ctx: Ctx, session: Obj, sub: Obj) -> str:
    action = f"/p/session/{session['id']}"
    feature = portal.configuration_of(ctx, session)["features"]["subscription_cancel"]

    def form(name: str, label: str, style: str = "secondary", extra: str = "") -> str:
        return templates.ACTION.substitute(
            action=escape(action),
            name=name,
            subscription=escape(sub["id"]),
            extra=extra,
            label=label,
            style=style,
        )

    forms_html = []
    prices = portal.allowed_prices(ctx, session, sub)
    if prices:
        options = "".join(
            f'<option value="{escape(p["id"])}">{escape(_price_label(ctx, p))}</option>'
            for p in prices
        )
        select = f'<label>Change plan</label><select name="price">{options}</select>'
        forms_html.append(form("change_plan", "Change plan", "", select))
    if sub["cancel_at_period_end"]:
        forms_html.append(form("renew", "Don't cancel"))
    elif feature["enabled"]:
        forms_html.append(form("cancel", "Cancel at period end"))
        if feature["mode"] == "immediately":
            forms_html.append(form("cancel_now", "Cancel now"))
    return "".join(forms_html)


def _price_label(ctx: Ctx, price: Obj) -> str:
    product = ctx.store.get("product", price["product"]) or {"name": price["product"]}
    amount = format_amount(Decimal(price["unit_amount_decimal"]), price["currency"])
    return f"{price['nickname'] or product['name']}: {amount} / {price['recurring']['interval']}"


def _invoice_table(session: Obj, invoices: list[Obj]) -> str:
    if not invoices:
        return "<p>None.</p>"
    rows = []
    for inv in invoices:
        pay = ""
        if inv["status"] == "open":
            pay = (
                f'<form method="post" action="/p/session/{escape(session["id"])}">'
                '<input type="hidden" name="action" value="pay_invoice">'
                f'<input type="hidden" name="invoice" value="{escape(inv["id"])}">'
                '<button type="submit" class="secondary">Pay</button></form>'
            )
        label = f"{_date(inv['created'])} · {inv['number']} · {inv['status']}"
        link = f'<a href="/i/{escape(inv["id"])}">{escape(label)}</a>'
        rows.append(
            templates.LINE.substitute(
                description=link + pay, amount=escape(format_amount(inv["total"], inv["currency"]))
            )
        )
    return f"<table>{''.join(rows)}</table>"


def _portal_cancel(ctx: Ctx, session: Obj, form: forms.Params) -> str:
    portal.cancel(ctx, session, form.str("subscription", required=True), immediately=False)
    return "Your subscription will be cancelled at the end of the period."


def _portal_cancel_now(ctx: Ctx, session: Obj, form: forms.Params) -> str:
    portal.cancel(ctx, session, form.str("subscription", required=True), immediately=True)
    return "Your subscription has been cancelled."


def _portal_renew(ctx: Ctx, session: Obj, form: forms.Params) -> str:
    portal.renew(ctx, session, form.str("subscription", required=True))
    return "Your subscription will renew."


def _portal_change_plan(ctx: Ctx, session: Obj, form: forms.Params) -> str:
    portal.change_plan(
        ctx, session, form.str("subscription", required=True), form.str("price", required=True)
    )
    return "Your plan has been changed."


def _portal_update_card(ctx: Ctx, session: Obj, form: forms.Params) -> str:
    pm = portal.update_card(
        ctx, session, form.str("card_number", required=True), name=form.str("name")
    )
    return f"Card ending {pm['card']['last4']} saved."


def _portal_pay_invoice(ctx: Ctx, session: Obj, form: forms.Params) -> str:
    portal.pay_invoice(ctx, session, form.str("invoice", required=True))
    return "Invoice paid."


PORTAL_ACTIONS: dict[str, Callable[[Ctx, Obj, forms.Params], str]] = {
    "cancel": _portal_cancel,
    "cancel_now": _portal_cancel_now,
    "renew": _portal_renew,
    "change_plan": _portal_change_plan,
    "update_card": _portal_update_card,
    "pay_invoice": _portal_pay_invoice,
}


async def portal_submit(request: Request) -> Response:
    """Carry out one portal action, then show the page again with what happened."""
    runtime, ctx = _context(request)
    form = await _form(request)
    session_id = request.path_params["session_id"]
    with runtime.store.lock:
        session = runtime.store.get("billing_portal.session", session_id)
        if session is None:
            return _message("Not found", "There is no such portal session.", status=404)
        action = PORTAL_ACTIONS.get(form.str("action") or "")
        if action is None:
            return _portal_view(ctx, session, error="Unknown action.", status=400)
        try:
            notice = action(ctx, session, form)
        except StripeError as exc:
            return _portal_view(ctx, session, error=exc.message, status=exc.status)
    return RedirectResponse(f"/p/session/{session_id}?notice={quote(notice)}", status_code=303)


# --- hosted invoices ----------------------------------------------------------------------
async def invoice_page(request: Request) -> Response:
    """A read-only view of a finalised invoice."""
    runtime, _ = _context(request)
    with runtime.store.lock:
        inv = runtime.store.get("invoice", request.path_params["invoice_id"])
        if inv is None or inv["status"] == "draft":
            return _message("Not found", "There is no such invoice.", status=404)
        lines = "".join(
            templates.LINE.substitute(
                description=escape(line["description"]),
                amount=escape(format_amount(line["amount"], line["currency"])),
            )
            for line in inv["lines"]["data"]
        )
        body = templates.INVOICE.substitute(
            number=escape(inv["number"] or inv["id"]),
            merchant=escape(ACCOUNT_NAME),
            status=escape(inv["status"]),
            lines=lines,
            due=escape(format_amount(inv["amount_due"], inv["currency"])),
            paid=escape(format_amount(inv["amount_paid"], inv["currency"])),
        )
    return _page(f"Invoice {inv['number']}", body)


# --- payment receipts -------------------------------------------------------------------
async def receipt_page(request: Request) -> Response:
    """The receipt of a captured charge, where its ``receipt_url`` points."""
    runtime, _ = _context(request)
    with runtime.store.lock:
        charge = runtime.store.get("charge", request.path_params["charge_id"])
        if charge is None or not charge["captured"]:
            return _message("Not found", "There is no such receipt.", status=404)
        card = charge["payment_method_details"]["card"]
        body = templates.RECEIPT.substitute(
            merchant=escape(ACCOUNT_NAME),
            number=escape(charge["receipt_number"] or charge["id"]),
            date=escape(_date(charge["created"])),
            description=escape(charge["description"] or "Payment"),
            amount=escape(format_amount(charge["amount_captured"], charge["currency"])),
            refunded=escape(format_amount(charge["amount_refunded"], charge["currency"])),
            card=escape(f"{card['brand'].title()} ending {card['last4']}"),
        )
    return _page(f"Receipt {charge['receipt_number']}", body)
