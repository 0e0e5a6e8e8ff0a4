"""Checkout sessions: creation, the payment their hosted page takes, expiry, line items."""

from __future__ import annotations

from typing import Any

from .. import cards, objects
from ..context import Ctx, RouteTable, apply_metadata, metadata_of, set_strings
from ..errors import StripeError, invalid, missing_param
from ..expand import virtual
from ..forms import Params
from ..lists import all_of, field_filter, paginate, range_filter
from ..store import Store, public
from . import billing, core, payments

Obj = dict[str, Any]
routes = RouteTable()

MIN_EXPIRY_S = 30 * 60
MAX_EXPIRY_S = 24 * 3600
SESSION_STRINGS = ("success_url", "cancel_url", "client_reference_id", "locale", "submit_type")


# --- creation -------------------------------------------------------------------
@routes.post("/v1/checkout/sessions")
def session_create(ctx: Ctx, params: Params) -> Obj:
    """Create a ``payment`` or ``subscription`` session whose ``url`` is the emulator's page."""
    mode = params.str("mode", required=True, choices=("payment", "subscription", "setup"))
    if mode == "setup":
        raise invalid("mode=setup is not supported by the Stripe emulator.", param="mode")
    cus = _customer(ctx, params)
    session = objects.checkout_session(ctx.store, mode=mode, url_base=ctx.url_base)
    session.update(
        {
            "customer": cus["id"] if cus else None,
            "customer_email": params.str("customer_email"),
            "customer_creation": _customer_creation(params, mode, cus),
            "expires_at": _expires_at(params, session["created"]),
            "_payment_intent_data": _payment_intent_data(params, mode),
            "_subscription_data": _subscription_data(params, mode),
        }
    )
    set_strings(session, params, SESSION_STRINGS)
    apply_metadata(session, params)
    items = _line_items(ctx, params.subs("line_items", required=True), mode)
    total = sum(item["amount_total"] for item in items)
    session.update(
        {
            "amount_subtotal": total,
            "amount_total": total,
            "currency": items[0]["currency"],
            "_line_items": items,
        }
    )
    return ctx.store.put(session)


def _customer(ctx: Ctx, params: Params) -> Obj | None:
    customer_id = params.str("customer")
    if customer_id and params.str("customer_email"):
        raise invalid(
            "You may only specify one of these parameters: customer, customer_email.",
            param="customer_email",
        )
    return ctx.store.require("customer", customer_id, param="customer") if customer_id else None


def _customer_creation(params: Params, mode: str, cus: Obj | None) -> str | None:
    choice = params.str("customer_creation", choices=("always", "if_required"))
    if choice and (mode != "payment" or cus is not None):
        raise invalid(
            "customer_creation can only be used in payment mode without a customer.",
            param="customer_creation",
        )
    return choice or ("if_required" if mode == "payment" and cus is None else None)


def _expires_at(params: Params, now: int) -> int:
    expires_at = params.int("expires_at")
    if expires_at is None:
        return now + MAX_EXPIRY_S
    if not now + MIN_EXPIRY_S <= expires_at <= now + MAX_EXPIRY_S:
        raise invalid(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from now.",
            param="expires_at",
        )
    return expires_at


def _line_items(ctx: Ctx, specs: list[Params], mode: str) -> list[Obj]:
    items = [_line_item(ctx, spec, mode) for spec in specs]
    recurring = [item for item in items if item["price"]["type"] == "recurring"]
    if mode == "subscription" and len(recurring) != len(items):
        raise invalid(
            "One-time prices in subscription mode are not supported by the Stripe emulator.",
            param="line_items",
        )
    if len({item["currency"] for item in items}) > 1:
        raise invalid("All line items must have the same currency.", param="line_items")
    return items


def _line_item(ctx: Ctx, spec: Params, mode: str) -> Obj:
    if spec.has("price_data"):
        price = core.inline_price(ctx, spec.sub("price_data"))
    else:
        price = core.require_active_price(
            ctx, spec.str("price", required=True), param=spec.name("price")
        )
    if mode == "payment" and price["type"] == "recurring":
        raise invalid(
            "You specified `payment` mode but passed a recurring price. Either switch to "
            "`subscription` mode or use only one-time prices.",
            param=spec.name("price"),
        )
    metered = (price["recurring"] or {}).get("usage_type") == "metered"
    quantity = spec.int("quantity", minimum=1)
    if metered and quantity is not None:
        raise invalid(
            "Quantity should not be specified for metered prices.", param=spec.name("quantity")
        )
    if not metered and quantity is None:
        raise missing_param(spec.name("quantity"))
    product = ctx.store.require("product", price["product"])
    amount = 0 if metered else core.price_amount(price, quantity)
    return objects.checkout_item(
        ctx.store, price_obj=price, product_name=product["name"], quantity=quantity, amount=amount
    )


def _mode_data(params: Params, key: str, mode: str, wanted: str) -> Params:
    """``payment_intent_data`` or ``subscription_data``, refused in the other mode."""
    data = params.sub(key)
    if data.data and mode != wanted:
        raise invalid(f"{key} can only be used in {wanted} mode.", param=key)
    return data


def _payment_intent_data(params: Params, mode: str) -> Obj:
    data = _mode_data(params, "payment_intent_data", mode, "payment")
    return {
        "description": data.str("description"),
        "metadata": metadata_of(data),
        "setup_future_usage": data.str("setup_future_usage", choices=("on_session", "off_session")),
    }


def _subscription_data(params: Params, mode: str) -> Obj:
    data = _mode_data(params, "subscription_data", mode, "subscription")
    return {
        "description": data.str("description"),
        "metadata": metadata_of(data),
        "trial_period_days": data.int("trial_period_days", minimum=1),
    }


# --- reading, expiry -------------------------------------------------------------------
def refresh(ctx: Ctx, session: Obj) -> Obj:
    """Expire an open session whose time is up (Stripe does it in the background)."""
    if session["status"] == "open" and session["expires_at"] <= ctx.store.now():
        expire(ctx, session)
    return session


def expire(ctx: Ctx, session: Obj) -> Obj:
    """Expire an open session and emit ``checkout.session.expired``."""
    session["status"] = "expired"
    session["url"] = None
    ctx.store.mark_dirty()
    ctx.emit("checkout.session.expired", session)
    return session


def open_session(ctx: Ctx, session_id: str) -> Obj:
    """A session that can still be paid; Stripe's error otherwise."""
    session = refresh(ctx, ctx.store.require("checkout.session", session_id))
    if session["status"] != "open":
        raise invalid(
            f"This Checkout Session is {session['status']} and can no longer be paid.",
            code="checkout_session_expired" if session["status"] == "expired" else None,
        )
    return session


@routes.get("/v1/checkout/sessions/{session_id}")
def session_retrieve(ctx: Ctx, params: Params, session_id: str) -> Obj:
    """A session."""
    return refresh(ctx, ctx.store.require("checkout.session", session_id))


@routes.post("/v1/checkout/sessions/{session_id}")
def session_update(ctx: Ctx, params: Params, session_id: str) -> Obj:
    """Update a session's metadata."""
    session = ctx.store.require("checkout.session", session_id)
    apply_metadata(session, params)
    ctx.store.mark_dirty()
    return session


@routes.post("/v1/checkout/sessions/{session_id}/expire")
def session_expire(ctx: Ctx, params: Params, session_id: str) -> Obj:
    """Expire an open session now."""
    session = refresh(ctx, ctx.store.require("checkout.session", session_id))
    if session["status"] != "open":
        raise invalid(
            f'Only Checkout Sessions with a status in ["open"] can be expired. This session has '
            f"a status of {session['status']}.",
        )
    return expire(ctx, session)


@routes.get("/v1/checkout/sessions")
def session_list(ctx: Ctx, params: Params) -> Obj:
    """Sessions by ``customer``, ``payment_intent``, ``subscription``, ``status``, ``created``."""
    where = all_of(
        field_filter(params, "customer", "payment_intent", "subscription", "status"),
        range_filter(params),
    )
    sessions = [refresh(ctx, s) for s in ctx.store.all("checkout.session", where)]
    return paginate(sessions, params, "/v1/checkout/sessions")


@routes.get("/v1/checkout/sessions/{session_id}/line_items")
def session_line_items(ctx: Ctx, params: Params, session_id: str) -> Obj:
    """A session's line items."""
    session = ctx.store.require("checkout.session", session_id)
    return paginate(
        list(session["_line_items"]), params, f"/v1/checkout/sessions/{session_id}/line_items"
    )


@virtual("checkout.session", "line_items")
def _expanded_line_items(store: Store, session: Obj) -> Obj:
    stored = store.get("checkout.session", session["id"]) or {}
    items = stored.get("_line_items", [])
    return objects.list_object(f"/v1/checkout/sessions/{session['id']}/line_items", list(items))


@virtual("checkout.session", "total_details.breakdown")
def _total_details_breakdown(store: Store, totals: Obj) -> Obj:
    return {"discounts": [], "taxes": []}


@virtual("item", "discounts")
def _item_discounts(store: Store, item: Obj) -> list[Obj]:
    return []


# --- completion ----------------------------------------------------------------
def complete(
    ctx: Ctx, session: Obj, card: cards.Card, *, email: str | None, name: str | None
) -> StripeError | None:
    """Pay a session with a test card as its page does; returns the card error, if any."""
    email = email or session["customer_email"]
    cus = ctx.store.get("customer", session["customer"])
    if cus is None and (
        session["mode"] == "subscription" or session["customer_creation"] == "always"
    ):
        cus = core.save_customer(ctx, objects.customer(ctx.store, email=email, name=name))
    pm = payments.new_payment_method(ctx, card, email=email, name=name)
    pay = _pay_subscription if session["mode"] == "subscription" else _pay_once
    error = pay(ctx, session, cus, pm)
    if error is not None:
        ctx.store.mark_dirty()
        return error
    session.update(
        {
            "customer": cus["id"] if cus else None,
            "customer_details": _customer_details(email, name),
            "status": "complete",
            "url": None,
        }
    )
    ctx.store.mark_dirty()
    ctx.emit("checkout.session.completed", session)
    return None


def _pay_once(ctx: Ctx, session: Obj, cus: Obj | None, pm: Obj) -> StripeError | None:
    data = session["_payment_intent_data"]
    intent, error = payments.pay(
        ctx,
        amount=session["amount_total"],
        currency_code=session["currency"],
        customer_id=cus["id"] if cus else None,
        pm=pm,
        description=data["description"],
        metadata=data["metadata"],
        off_session=False,
        setup_future_usage=data["setup_future_usage"],
    )
    session["payment_intent"] = intent["id"]
    if error is None:
        session["payment_status"] = "paid"
    return error


def _pay_subscription(ctx: Ctx, session: Obj, cus: Obj, pm: Obj) -> StripeError | None:
    try:
        payments.attach(ctx, pm, cus)
    except StripeError as error:
        return error
    data = session["_subscription_data"]
    items = [
        billing.NewItem(item["price"], item["quantity"], {}) for item in session["_line_items"]
    ]
    sub = billing.new_subscription(ctx, cus, items, pm_id=pm["id"])
    sub.update({"description": data["description"], "metadata": dict(data["metadata"])})
    days = data["trial_period_days"]
    trial_end = sub["created"] + days * 86400 if days else None
    error = billing.start_subscription(ctx, sub, trial_end=trial_end)
    if error is not None:
        billing.expire_incomplete(ctx, sub)
        return error
    invoice = ctx.store.require("invoice", sub["latest_invoice"])
    session.update(
        {
            "invoice": invoice["id"],
            "payment_status": "paid" if invoice["amount_paid"] else "no_payment_required",
            "subscription": sub["id"],
        }
    )
    return None


def _customer_details(email: str | None, name: str | None) -> Obj:
    return {
        "address": objects.empty_address(),
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def pay_with(
    ctx: Ctx, session_id: str, card_value: str, *, email: str | None = None, name: str | None = None
) -> Obj:
    """Pay a session with a card number, ``tok_`` or ``pm_card_`` alias; raises the card error."""
    session = open_session(ctx, session_id)
    card = cards.from_any(card_value, param="card")
    if session["customer"] is None and not (email or session["customer_email"]):
        email = "customer@example.com"
    error = complete(ctx, session, card, email=email, name=name)
    if error is not None:
        raise error
    return public(session)
