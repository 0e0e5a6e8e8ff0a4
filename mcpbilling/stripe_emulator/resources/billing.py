"""Subscriptions (periods on the items, as in this API version), invoices and invoice payments."""

from __future__ import annotations

import calendar
import copy
import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .. import objects
from ..context import Ctx, RouteTable, apply_metadata, diff, metadata_of, set_strings
from ..errors import StripeError, invalid, no_such
from ..expand import virtual
from ..forms import Params
from ..lists import all_of, field_filter, paginate, range_filter
from ..store import Store, public
from . import core, meters, payments

Obj = dict[str, Any]
routes = RouteTable()

PAYMENT_BEHAVIORS = (
    "allow_incomplete",
    "default_incomplete",
    "error_if_incomplete",
    "pending_if_incomplete",
)
PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")
ENDED = ("canceled", "incomplete_expired")
# Stripe's line descriptions read "1 <multiplication sign> Pro (at $20.00 / month)".
TIMES = "\N{MULTIPLICATION SIGN}"
RETRY_AFTER_S = 3 * 86400  # when a failed renewal would be retried
INTENT_DESCRIPTIONS = {
    "subscription_create": "Subscription creation",
    "subscription_cycle": "Subscription cycle",
    "subscription_update": "Subscription update",
}


@dataclass
class NewItem:
    """An item of a subscription to be: its price, quantity (None when metered) and metadata."""

    price: Obj
    quantity: int | None
    metadata: dict[str, str]


@dataclass
class Line:
    """An invoice line to be: a subscription item, what it costs, for which quantity and period."""

    item: Obj
    amount: int
    quantity: Decimal
    period: tuple[int, int]
    description: str


# --- periods --------------------------------------------------------------------
def add_interval(start: int, interval: str, count: int) -> int:
    """``start`` moved on by a price's billing interval, months clamped to their last day."""
    if interval in ("day", "week"):
        return start + count * 86400 * (7 if interval == "week" else 1)
    moment = dt.datetime.fromtimestamp(start, dt.UTC)
    index = moment.month - 1 + count * (12 if interval == "year" else 1)
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def next_period_end(price: Obj, start: int) -> int:
    """The end of a period of ``price`` that starts at ``start``."""
    rec = price["recurring"]
    return add_interval(start, rec["interval"], rec["interval_count"])


def period_of(sub: Obj) -> tuple[int, int]:
    """The subscription's current period (its items share it)."""
    first = sub["items"]["data"][0]
    return first["current_period_start"], first["current_period_end"]


# --- items ------------------------------------------------------------------------
def _is_metered(price: Obj) -> bool:
    return (price["recurring"] or {}).get("usage_type") == "metered"


def _item_price(ctx: Ctx, item: Params) -> Obj:
    if item.has("price_data"):
        price = core.inline_price(ctx, item.sub("price_data"))
    else:
        price = core.require_active_price(
            ctx, item.str("price", required=True), param=item.name("price")
        )
    if price["type"] != "recurring":
        raise invalid(
            "The price specified is set to `type=one_time` but this field only accepts prices "
            "with `type=recurring`.",
            param=item.name("price"),
        )
    return price


def _item_quantity(price: Obj, item: Params, default: int | None = 1) -> int | None:
    if _is_metered(price):
        if item.has("quantity"):
            raise invalid(
                "Quantity should not be specified where usage_type is `metered`.",
                param=item.name("quantity"),
            )
        return None
    quantity = item.int("quantity", minimum=0)
    return default if quantity is None else quantity


def _check_compatible(prices: list[Obj], param: str = "items") -> None:
    first = prices[0]
    for price in prices[1:]:
        if price["currency"] != first["currency"]:
            raise invalid("All prices on a subscription must have the same currency.", param=param)
        same = ("interval", "interval_count")
        if any(price["recurring"][key] != first["recurring"][key] for key in same):
            raise invalid(
                "All prices on a subscription must have the same recurring interval.", param=param
            )


def _new_item(ctx: Ctx, sub: Obj, spec: NewItem, period: tuple[int, int]) -> Obj:
    item = objects.subscription_item(
        ctx.store,
        subscription_id=sub["id"],
        price_obj=spec.price,
        quantity=spec.quantity,
        period=period,
    )
    item["metadata"] = dict(spec.metadata)
    return item


def _parse_item(ctx: Ctx, spec: Params) -> NewItem:
    price = _item_price(ctx, spec)
    return NewItem(price, _item_quantity(price, spec), metadata_of(spec))


def _set_item_price(item: Obj, price: Obj) -> None:
    item["price"] = dict(price)
    item["plan"] = objects.plan_from_price(price)


def find_item(store: Store, item_id: str) -> tuple[Obj, Obj] | None:
    """A subscription item and its subscription."""
    for sub in store.all("subscription"):
        for item in sub["items"]["data"]:
            if item["id"] == item_id:
                return sub, item
    return None


# --- invoices -----------------------------------------------------------------------
def _line_description(item: Obj, quantity: Decimal, product_name: str) -> str:
    price = item["price"]
    unit = objects.format_amount(Decimal(price["unit_amount_decimal"]), price["currency"])
    interval = price["recurring"]["interval"]
    text = f"{objects.decimal_string(quantity)} {TIMES} {product_name} (at {unit} / {interval})"
    return f"Usage: {text}" if _is_metered(price) else text


def _product_name(store: Store, price: Obj) -> str:
    product = store.get("product", price["product"])
    return product["name"] if product else price["product"]


def licensed_line(store: Store, item: Obj, period: tuple[int, int], *, trial: bool = False) -> Line:
    """A licensed item billed in advance for ``period`` (nothing during a trial)."""
    quantity = Decimal(item["quantity"] or 0)
    name = _product_name(store, item["price"])
    amount = 0 if trial else core.price_amount(item["price"], int(quantity))
    description = f"Trial period for {name}" if trial else _line_description(item, quantity, name)
    return Line(item, amount, quantity, period, description)


def usage_line(store: Store, sub: Obj, item: Obj, period: tuple[int, int]) -> Line | None:
    """A metered item billed in arrears from its meter's events in ``period``."""
    meter = store.get("billing.meter", item["price"]["recurring"]["meter"])
    if meter is None:
        return None
    usage = meters.aggregate(store, meter, sub["customer"], *period)
    exact = usage * Decimal(item["price"]["unit_amount_decimal"])
    amount = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    description = _line_description(item, usage, _product_name(store, item["price"]))
    return Line(item, amount, usage, period, description)


def bill(ctx: Ctx, sub: Obj, *, reason: str, lines: list[Line], period: tuple[int, int]) -> Obj:
    """Create and finalise an invoice for a subscription; the caller collects it."""
    cus = ctx.store.require("customer", sub["customer"])
    inv = objects.invoice(ctx.store, customer_obj=cus, sub=sub, billing_reason=reason)
    inv["lines"]["data"] = [
        objects.invoice_line(
            ctx.store,
            invoice_id=inv["id"],
            item=line.item,
            amount=line.amount,
            quantity=line.quantity,
            period=line.period,
            description=line.description,
        )
        for line in lines
    ]
    total = sum(line.amount for line in lines)
    inv.update(
        {
            "period_end": period[1],
            "period_start": period[0],
            "subtotal": total,
            "subtotal_excluding_tax": total,
            "total": total,
            "total_excluding_tax": total,
        }
    )
    _apply_balance(inv, cus, total)
    ctx.store.put(inv)
    sub["latest_invoice"] = inv["id"]
    ctx.emit("invoice.created", inv)
    _finalize(ctx, inv, cus)
    return inv


def _apply_balance(inv: Obj, cus: Obj, total: int) -> None:
    """Settle against the customer's balance (negative: credit), as Stripe does; credit remains."""
    net = total + cus["balance"]
    inv.update(
        {
            "amount_due": max(net, 0),
            "amount_remaining": max(net, 0),
            "starting_balance": cus["balance"],
            "ending_balance": min(net, 0),
        }
    )
    cus["balance"] = min(net, 0)


def _finalize(ctx: Ctx, inv: Obj, cus: Obj) -> None:
    now = ctx.store.now()
    inv.update(
        {
            "effective_at": now,
            "hosted_invoice_url": f"{ctx.url_base}/i/{inv['id']}",
            "number": f"{cus['invoice_prefix']}-{cus['next_invoice_sequence']:04d}",
            "status": "open",
            "webhooks_delivered_at": now,
        }
    )
    inv["status_transitions"]["finalized_at"] = now
    cus["next_invoice_sequence"] += 1
    cus["currency"] = cus["currency"] or inv["currency"]
    ctx.emit("invoice.finalized", inv)


def _billing_payment_method(ctx: Ctx, inv: Obj) -> Obj | None:
    sub = ctx.store.get("subscription", inv["subscription"]) or {}
    cus = ctx.store.require("customer", inv["customer"])
    pm_id = sub.get("default_payment_method") or cus["invoice_settings"]["default_payment_method"]
    return ctx.store.get("payment_method", pm_id)


def collect(ctx: Ctx, inv: Obj, *, pm: Obj | None = None) -> StripeError | None:
    """Try to pay an open invoice with the given or the default card; returns the error, if any."""
    if inv["amount_remaining"] == 0:
        _mark_paid(ctx, inv, None)
        return None
    pm = pm or _billing_payment_method(ctx, inv)
    inv["attempt_count"] += 1
    inv["attempted"] = True
    if pm is None:
        return _payment_failed(
            ctx,
            inv,
            invalid(
                "This customer has no attached payment source or default payment method.",
                param="default_payment_method",
            ),
        )
    intent, error = payments.pay(
        ctx,
        amount=inv["amount_remaining"],
        currency_code=inv["currency"],
        customer_id=inv["customer"],
        pm=pm,
        description=INTENT_DESCRIPTIONS.get(inv["billing_reason"]),
    )
    record = ctx.store.put(
        objects.invoice_payment(ctx.store, invoice_obj=inv, intent_id=intent["id"])
    )
    if error is not None:
        return _payment_failed(ctx, inv, error)
    _mark_paid(ctx, inv, record)
    return None


def _payment_failed(ctx: Ctx, inv: Obj, error: StripeError) -> StripeError:
    renewal = inv["billing_reason"] == "subscription_cycle"
    inv["next_payment_attempt"] = ctx.store.now() + RETRY_AFTER_S if renewal else None
    ctx.store.mark_dirty()
    ctx.emit("invoice.payment_failed", inv)
    return error


def _mark_paid(ctx: Ctx, inv: Obj, record: Obj | None) -> None:
    now = ctx.store.now()
    inv.update(
        {
            "amount_paid": inv["amount_paid"] + inv["amount_remaining"],
            "amount_remaining": 0,
            "next_payment_attempt": None,
            "status": "paid",
        }
    )
    inv["status_transitions"]["paid_at"] = now
    ctx.store.mark_dirty()
    if record is not None:
        record.update({"amount_paid": record["amount_requested"], "status": "paid"})
        record["status_transitions"]["paid_at"] = now
        ctx.emit("invoice_payment.paid", record)
    ctx.emit("invoice.paid", inv)
    ctx.emit("invoice.payment_succeeded", inv)


def settle_status(sub: Obj, inv: Obj) -> None:
    """The subscription status that follows an invoice payment attempt."""
    if inv["status"] == "paid":
        if sub["status"] in ("incomplete", "past_due", "unpaid", "trialing"):
            sub["status"] = "active"
    elif inv["billing_reason"] == "subscription_create":
        sub["status"] = "incomplete"
    elif sub["status"] in ("active", "trialing"):
        sub["status"] = "past_due"


# --- subscriptions -------------------------------------------------------------
@routes.post("/v1/subscriptions")
def subscription_create(ctx: Ctx, params: Params) -> Obj:
    """Create a subscription and its first invoice, paid at once with the default card."""
    cus = ctx.store.require("customer", params.str("customer", required=True), param="customer")
    items = [_parse_item(ctx, spec) for spec in params.subs("items", required=True)]
    behavior = params.str("payment_behavior", choices=PAYMENT_BEHAVIORS) or "allow_incomplete"
    sub = new_subscription(ctx, cus, items, pm_id=params.str("default_payment_method"))
    set_strings(sub, params, ("description",))
    apply_metadata(sub, params)
    trial_end = _trial_end(params, items[0].price, sub["created"])
    error = start_subscription(
        ctx, sub, behavior=behavior, trial_end=trial_end, cancel=params.bool("cancel_at_period_end")
    )
    if error is not None and behavior == "error_if_incomplete":
        raise error
    return sub


def new_subscription(ctx: Ctx, cus: Obj, items: list[NewItem], *, pm_id: str | None) -> Obj:
    """A subscription not yet stored: checked items, the default payment method."""
    _check_compatible([item.price for item in items])
    sub = objects.subscription(
        ctx.store, customer_id=cus["id"], currency=items[0].price["currency"]
    )
    sub["default_payment_method"] = _default_payment_method(ctx, cus, pm_id)
    sub["_items"] = items
    return sub


def start_subscription(
    ctx: Ctx,
    sub: Obj,
    *,
    behavior: str = "allow_incomplete",
    trial_end: int | None = None,
    cancel: bool = False,
) -> StripeError | None:
    """Store a new subscription, bill its first invoice, emit ``customer.subscription.created``."""
    items: list[NewItem] = sub.pop("_items")
    start = sub["created"]
    period = (start, trial_end or next_period_end(items[0].price, start))
    sub["items"]["data"] = [_new_item(ctx, sub, item, period) for item in items]
    if trial_end:
        sub.update({"status": "trialing", "trial_end": trial_end, "trial_start": start})
    if cancel:
        schedule_cancel(sub, True, start)
    ctx.store.put(sub)
    error = _first_invoice(ctx, sub, behavior=behavior, trial=bool(trial_end))
    ctx.emit("customer.subscription.created", sub)
    return error


def _first_invoice(ctx: Ctx, sub: Obj, *, behavior: str, trial: bool) -> StripeError | None:
    lines = [
        licensed_line(ctx.store, item, period_of(sub), trial=trial)
        for item in sub["items"]["data"]
        if not _is_metered(item["price"])
    ]
    inv = bill(
        ctx, sub, reason="subscription_create", lines=lines, period=(sub["created"], sub["created"])
    )
    if behavior == "default_incomplete" and inv["amount_due"] > 0:
        return None
    error = collect(ctx, inv)
    if not trial:
        settle_status(sub, inv)
    return error


def _trial_end(params: Params, price: Obj, now: int) -> int | None:
    if params.has("trial_end"):
        if params.str("trial_end") == "now":
            return None
        end = params.int("trial_end")
        if end <= now:
            raise invalid("trial_end must be in the future.", param="trial_end")
        return end
    days = params.int("trial_period_days", minimum=0)
    if days is None and params.bool("trial_from_plan"):
        days = price["recurring"]["trial_period_days"]
    return now + days * 86400 if days else None


def _default_payment_method(ctx: Ctx, cus: Obj, pm_id: str | None) -> str | None:
    if not pm_id:
        return None
    return payments.attached_to(ctx, cus, pm_id, param="default_payment_method")["id"]


def schedule_cancel(sub: Obj, cancel: bool, now: int) -> None:
    """Set or clear ``cancel_at_period_end`` and the fields that go with it."""
    sub["cancel_at_period_end"] = cancel
    sub["cancel_at"] = period_of(sub)[1] if cancel else None
    sub["canceled_at"] = now if cancel else None
    sub["cancellation_details"]["reason"] = "cancellation_requested" if cancel else None


routes.retrieve("/v1/subscriptions/{sub_id}", "subscription")


@routes.post("/v1/subscriptions/{sub_id}")
def subscription_update(ctx: Ctx, params: Params, sub_id: str) -> Obj:
    """Change items (price, quantity), cancellation at period end, default card, metadata."""
    sub = ctx.store.require("subscription", sub_id)
    if sub["status"] in ENDED and set(params.data) - {"metadata", "cancellation_details", "expand"}:
        raise invalid(
            "A canceled subscription can only update its cancellation_details and metadata.",
            param="id",
        )
    proration = params.str("proration_behavior", choices=PRORATION_BEHAVIORS) or "create_prorations"
    before = copy.deepcopy(sub["items"]["data"])
    cus = ctx.store.require("customer", sub["customer"])
    with ctx.changes(sub, "customer.subscription.updated"):
        if params.has("items"):
            _update_items(ctx, sub, params.subs("items"))
        if params.has("cancel_at_period_end"):
            schedule_cancel(sub, params.bool("cancel_at_period_end"), ctx.store.now())
        if params.has("default_payment_method"):
            sub["default_payment_method"] = _default_payment_method(
                ctx, cus, params.str("default_payment_method")
            )
        _set_cancellation_details(sub, params)
        set_strings(sub, params, ("description",))
        apply_metadata(sub, params)
    if proration == "always_invoice":
        _invoice_proration(ctx, sub, before)
    return sub


def _set_cancellation_details(sub: Obj, params: Params) -> None:
    details = params.sub("cancellation_details")
    set_strings(sub["cancellation_details"], details, ("comment", "feedback"))


def _update_items(ctx: Ctx, sub: Obj, specs: list[Params]) -> None:
    items = sub["items"]["data"]
    for spec in specs:
        item_id = spec.str("id")
        if item_id is None:
            items.append(_new_item(ctx, sub, _parse_item(ctx, spec), period_of(sub)))
            continue
        item = next((it for it in items if it["id"] == item_id), None)
        if item is None:
            raise no_such("subscription item", item_id, param=spec.name("id"))
        if spec.bool("deleted"):
            items.remove(item)
            continue
        if spec.has("price") or spec.has("price_data"):
            _set_item_price(item, _item_price(ctx, spec))
        item["quantity"] = _item_quantity(item["price"], spec, default=item["quantity"])
        apply_metadata(item, spec)
    if not items:
        raise invalid("A subscription must keep at least one item.", param="items")
    _check_compatible([item["price"] for item in items])


def _invoice_proration(ctx: Ctx, sub: Obj, before: list[Obj]) -> None:
    """``always_invoice``: bill (or credit) the price difference for the rest of the period now."""
    start, end = period_of(sub)
    now = ctx.store.now()
    fraction = Decimal(max(end - now, 0)) / Decimal(max(end - start, 1))
    old = {item["id"]: item for item in before}
    lines = []
    for item in sub["items"]["data"]:
        if _is_metered(item["price"]):
            continue
        previous = old.get(item["id"])
        was = core.price_amount(previous["price"], previous["quantity"] or 0) if previous else 0
        diff = core.price_amount(item["price"], item["quantity"] or 0) - was
        if diff:
            amount = int((diff * fraction).quantize(Decimal(1), rounding=ROUND_HALF_UP))
            name = _product_name(ctx.store, item["price"])
            lines.append(
                Line(
                    item,
                    amount,
                    Decimal(item["quantity"] or 0),
                    (now, end),
                    f"Remaining time on {name}",
                )
            )
    if not lines:
        return
    inv = bill(ctx, sub, reason="subscription_update", lines=lines, period=(now, now))
    collect(ctx, inv)


def cancel_now(ctx: Ctx, sub: Obj, *, reason: str = "cancellation_requested") -> Obj:
    """End a subscription now and emit ``customer.subscription.deleted``."""
    now = ctx.store.now()
    sub.update({"canceled_at": sub["canceled_at"] or now, "ended_at": now, "status": "canceled"})
    sub["cancellation_details"]["reason"] = reason
    ctx.store.mark_dirty()
    ctx.emit("customer.subscription.deleted", sub)
    return sub


@routes.delete("/v1/subscriptions/{sub_id}")
def subscription_cancel(ctx: Ctx, params: Params, sub_id: str) -> Obj:
    """Cancel now; ``invoice_now=true`` bills metered usage so far first."""
    sub = ctx.store.require("subscription", sub_id)
    if sub["status"] in ENDED:
        raise invalid(f"This subscription ({sub_id}) has already been canceled.", param="id")
    _set_cancellation_details(sub, params)
    if params.bool("invoice_now"):
        _bill_usage(ctx, sub)
    return cancel_now(ctx, sub)


def _usage_lines(ctx: Ctx, sub: Obj) -> tuple[list[Line], tuple[int, int]]:
    """Metered usage not billed yet: events up to this second, from where the last bill stopped."""
    window = (sub.get("_usage_from") or period_of(sub)[0], ctx.store.now() + 1)
    sub["_usage_from"] = window[1]
    lines = [
        line
        for item in sub["items"]["data"]
        if _is_metered(item["price"])
        and (line := usage_line(ctx.store, sub, item, window)) is not None
    ]
    return lines, window


def _bill_usage(ctx: Ctx, sub: Obj) -> Obj | None:
    lines, window = _usage_lines(ctx, sub)
    if not lines:
        return None
    inv = bill(ctx, sub, reason="subscription_cycle", lines=lines, period=window)
    collect(ctx, inv)
    return inv


def advance(ctx: Ctx, sub: Obj) -> Obj | None:
    """Renew now: the running period ends, the next starts; the renewal invoice is paid or fails."""
    if sub["status"] in ENDED:
        raise invalid(f"The subscription {sub['id']} has ended.", param="id")
    if sub["status"] == "incomplete":
        expire_incomplete(ctx, sub)
        return None
    if sub["cancel_at_period_end"] or (sub["cancel_at"] and sub["cancel_at"] <= period_of(sub)[1]):
        inv = _bill_usage(ctx, sub)
        cancel_now(ctx, sub)
        return inv
    with ctx.changes(sub, "customer.subscription.updated"):
        inv = _renew(ctx, sub)
    return inv


def _renew(ctx: Ctx, sub: Obj) -> Obj:
    now = ctx.store.now()
    usage, window = _usage_lines(ctx, sub)
    items = sub["items"]["data"]
    new_period = (now, next_period_end(items[0]["price"], now))
    for item in items:
        item["current_period_start"], item["current_period_end"] = new_period
    if sub["status"] == "trialing":
        sub["trial_end"] = now
    licensed = [
        licensed_line(ctx.store, item, new_period)
        for item in items
        if not _is_metered(item["price"])
    ]
    inv = bill(ctx, sub, reason="subscription_cycle", lines=usage + licensed, period=window)
    collect(ctx, inv)
    settle_status(sub, inv)
    return inv


def expire_incomplete(ctx: Ctx, sub: Obj) -> None:
    """An incomplete subscription that was never paid ends, and its invoice is voided."""
    with ctx.changes(sub, "customer.subscription.updated"):
        sub.update({"ended_at": ctx.store.now(), "status": "incomplete_expired"})
    inv = ctx.store.get("invoice", sub["latest_invoice"])
    if inv is not None and inv["status"] == "open":
        void(ctx, inv)


@routes.get("/v1/subscriptions")
def subscription_list(ctx: Ctx, params: Params) -> Obj:
    """Subscriptions by ``customer``, ``price``, ``status`` (default: not ended) and ``created``."""
    status = params.str("status")
    price_id = params.str("price")

    def status_ok(sub: Obj) -> bool:
        if status == "all":
            return True
        if status == "ended":
            return sub["status"] in ENDED
        return sub["status"] == status if status else sub["status"] not in ENDED

    where = all_of(
        field_filter(params, "customer"),
        range_filter(params),
        status_ok,
        lambda sub: (
            price_id is None or any(i["price"]["id"] == price_id for i in sub["items"]["data"])
        ),
    )
    return paginate(ctx.store.all("subscription", where), params, "/v1/subscriptions")


@routes.get("/v1/subscription_items")
def subscription_item_list(ctx: Ctx, params: Params) -> Obj:
    """A subscription's items."""
    sub = ctx.store.require(
        "subscription", params.str("subscription", required=True), param="subscription"
    )
    return paginate(
        list(sub["items"]["data"]), params, f"/v1/subscription_items?subscription={sub['id']}"
    )


@routes.get("/v1/subscription_items/{item_id}")
def subscription_item_retrieve(ctx: Ctx, params: Params, item_id: str) -> Obj:
    """A subscription item."""
    found = find_item(ctx.store, item_id)
    if found is None:
        raise no_such("subscription item", item_id)
    return found[1]


# --- invoices --------------------------------------------------------------------
routes.retrieve("/v1/invoices/{invoice_id}", "invoice")
routes.updating("/v1/invoices/{invoice_id}", "invoice", "description", "footer")


@routes.post("/v1/invoices/{invoice_id}/pay")
def invoice_pay(ctx: Ctx, params: Params, invoice_id: str) -> Obj:
    """Pay an open invoice now, with ``payment_method`` or the default card."""
    inv = ctx.store.require("invoice", invoice_id)
    if inv["status"] != "open":
        raise invalid(
            f"Invoice is {inv['status']}; only open invoices can be paid.", code="invoice_not_open"
        )
    sub = ctx.store.get("subscription", inv["subscription"])
    before = public(sub) if sub else None
    if params.bool("paid_out_of_band"):
        _mark_paid(ctx, inv, None)
        error = None
    else:
        pm_id = params.str("payment_method")
        pm = payments.payment_method_for(ctx, pm_id, param="payment_method") if pm_id else None
        error = collect(ctx, inv, pm=pm)
    if sub is not None:
        _after_payment(ctx, sub, inv, before)
    if error is not None:
        raise error
    return inv


def _after_payment(ctx: Ctx, sub: Obj, inv: Obj, before: Obj | None) -> None:
    settle_status(sub, inv)
    previous = diff(before or {}, public(sub))
    if previous:
        ctx.emit("customer.subscription.updated", sub, previous)


def void(ctx: Ctx, inv: Obj) -> Obj:
    """Void an open invoice."""
    inv["status"] = "void"
    inv["status_transitions"]["voided_at"] = ctx.store.now()
    ctx.store.mark_dirty()
    ctx.emit("invoice.voided", inv)
    return inv


@routes.post("/v1/invoices/{invoice_id}/void")
def invoice_void(ctx: Ctx, params: Params, invoice_id: str) -> Obj:
    """Void an open invoice."""
    inv = ctx.store.require("invoice", invoice_id)
    if inv["status"] != "open":
        raise invalid(
            f"You can only void open invoices; this one is {inv['status']}.",
            code="invoice_not_open",
        )
    return void(ctx, inv)


routes.listing("/v1/invoices", "invoice", "customer", "subscription", "status")


@routes.get("/v1/invoices/{invoice_id}/lines")
def invoice_lines(ctx: Ctx, params: Params, invoice_id: str) -> Obj:
    """An invoice's lines."""
    inv = ctx.store.require("invoice", invoice_id)
    return paginate(list(inv["lines"]["data"]), params, f"/v1/invoices/{invoice_id}/lines")


routes.retrieve("/v1/invoice_payments/{payment_id}", "invoice_payment")
routes.listing("/v1/invoice_payments", "invoice_payment", "invoice", "status")


@virtual("invoice", "payments")
def _invoice_payments(store: Store, inv: Obj) -> Obj:
    records = store.all("invoice_payment", lambda p: p["invoice"] == inv["id"])
    return objects.list_object(
        f"/v1/invoice_payments?invoice={inv['id']}", [public(p) for p in records]
    )
