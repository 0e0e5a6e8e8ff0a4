"""Payment methods (test cards), payment intents, charges, refunds and balance transactions."""

from __future__ import annotations

from typing import Any

from .. import cards, objects
from ..context import Ctx, RouteTable, apply_metadata, currency, set_strings
from ..errors import StripeError, invalid
from ..forms import Params
from ..lists import all_of, field_filter, paginate
from ..store import public

Obj = dict[str, Any]
routes = RouteTable()

# Stripe's minimum charge amounts in the minor unit
# (docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).
MINIMUM_AMOUNTS = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "chf": 50, "jpy": 50}
CANCELLABLE = (
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
    "requires_capture",
)


# --- payment methods -----------------------------------------------------------
def payment_method_for(ctx: Ctx, value: str, *, param: str) -> Obj:
    """The payment method a parameter names; a ``pm_card_*`` alias makes a new one."""
    if cards.is_pm_alias(value):
        return new_payment_method(ctx, cards.from_alias(value))
    return ctx.store.require("payment_method", value, param=param)


def new_payment_method(
    ctx: Ctx, card: cards.Card, *, email: str | None = None, name: str | None = None
) -> Obj:
    """Store a new card payment method for a test card."""
    pm = objects.payment_method(ctx.store, card=card.as_dict())
    pm["billing_details"] = objects.billing_details(email, name)
    return ctx.store.put(pm)


def attached_to(ctx: Ctx, cus: Obj, pm_id: str, *, param: str) -> Obj:
    """A payment method that must already be attached to the customer."""
    pm = ctx.store.get("payment_method", pm_id)
    if pm is None or pm["customer"] != cus["id"]:
        raise invalid(
            f"The customer does not have a payment method with the ID {pm_id}. The payment "
            "method must be attached to the customer.",
            param=param,
            code="resource_missing",
        )
    return pm


def check_attachable(pm: Obj, customer_id: str) -> None:
    """Stripe's refusals to attach: another customer's card, or a card that declines."""
    if pm["customer"] not in (None, customer_id):
        raise invalid(
            "The payment method you provided has already been attached to a customer.",
            param="payment_method",
        )
    card = cards.by_key(pm["_card"])
    if not card.attachable and card.decline is not None:
        raise cards.card_error(card.decline)


def attach(ctx: Ctx, pm: Obj, cus: Obj) -> Obj:
    """Attach a payment method to a customer; Stripe refuses cards that decline."""
    if pm["customer"] == cus["id"]:
        return pm
    check_attachable(pm, cus["id"])
    pm["customer"] = cus["id"]
    ctx.store.mark_dirty()
    ctx.emit("payment_method.attached", pm)
    return pm


def detach(ctx: Ctx, pm: Obj) -> Obj:
    """Detach a payment method, clearing it as its customer's default."""
    cus = ctx.store.get("customer", pm["customer"])
    if cus is None:
        raise invalid(
            "The payment method you provided is not attached to a customer so detachment is "
            "impossible.",
            param="payment_method",
        )
    pm["customer"] = None
    ctx.store.mark_dirty()
    ctx.emit("payment_method.detached", pm)
    if cus["invoice_settings"]["default_payment_method"] == pm["id"]:
        with ctx.changes(cus, "customer.updated"):
            cus["invoice_settings"]["default_payment_method"] = None
    return pm


def _card_from_params(params: Params) -> cards.Card:
    card = params.sub("card", required=True)
    token = card.str("token")
    if token:
        return cards.from_token(token, param="card[token]")
    return cards.from_number(card.str("number", required=True), param="card[number]")


def _set_billing_details(pm: Obj, params: Params) -> None:
    if not params.has("billing_details"):
        return
    details = params.sub("billing_details")
    current = pm["billing_details"]
    set_strings(current, details, ("email", "name", "phone"))
    if details.has("address"):
        current["address"] = {**objects.empty_address(), **details.sub("address").data}


@routes.post("/v1/payment_methods")
def payment_method_create(ctx: Ctx, params: Params) -> Obj:
    """Create a card payment method from ``card[token]`` or a test ``card[number]``."""
    params.str("type", required=True, choices=("card",))
    pm = new_payment_method(ctx, _card_from_params(params))
    _set_billing_details(pm, params)
    apply_metadata(pm, params)
    return pm


routes.retrieve("/v1/payment_methods/{pm_id}", "payment_method")


@routes.post("/v1/payment_methods/{pm_id}")
def payment_method_update(ctx: Ctx, params: Params, pm_id: str) -> Obj:
    """Update billing details and metadata."""
    pm = ctx.store.require("payment_method", pm_id)
    with ctx.changes(pm, "payment_method.updated"):
        _set_billing_details(pm, params)
        apply_metadata(pm, params)
    return pm


@routes.post("/v1/payment_methods/{pm_id}/attach")
def payment_method_attach(ctx: Ctx, params: Params, pm_id: str) -> Obj:
    """Attach to ``customer`` (a ``pm_card_*`` alias attaches a new payment method)."""
    cus = ctx.store.require("customer", params.str("customer", required=True), param="customer")
    return attach(ctx, payment_method_for(ctx, pm_id, param="payment_method"), cus)


@routes.post("/v1/payment_methods/{pm_id}/detach")
def payment_method_detach(ctx: Ctx, params: Params, pm_id: str) -> Obj:
    """Detach from its customer."""
    return detach(ctx, ctx.store.require("payment_method", pm_id))


@routes.get("/v1/payment_methods")
def payment_method_list(ctx: Ctx, params: Params) -> Obj:
    """Payment methods by ``customer`` and ``type``."""
    if params.str("customer"):
        ctx.store.require("customer", params.str("customer"), param="customer")
    where = field_filter(params, "customer", "type")
    return paginate(ctx.store.all("payment_method", where), params, "/v1/payment_methods")


@routes.get("/v1/customers/{customer_id}/payment_methods")
def customer_payment_methods(ctx: Ctx, params: Params, customer_id: str) -> Obj:
    """A customer's payment methods."""
    ctx.store.require("customer", customer_id)
    where = all_of(field_filter(params, "type"), lambda pm: pm["customer"] == customer_id)
    url = f"/v1/customers/{customer_id}/payment_methods"
    return paginate(ctx.store.all("payment_method", where), params, url)


@routes.get("/v1/customers/{customer_id}/payment_methods/{pm_id}")
def customer_payment_method(ctx: Ctx, params: Params, customer_id: str, pm_id: str) -> Obj:
    """One of a customer's payment methods."""
    pm = ctx.store.require("payment_method", pm_id)
    if pm["customer"] != customer_id:
        raise StripeError(
            404,
            "invalid_request_error",
            f"Customer {customer_id} does not have a payment method with ID {pm_id}",
            code="resource_missing",
            param="payment_method",
        )
    return pm


# --- charging ------------------------------------------------------------------
def processing_fee(amount: int) -> int:
    """Stripe's standard US card fee: 2.9% + 30."""
    return round(amount * 0.029) + 30


def confirm(ctx: Ctx, intent: Obj, pm: Obj, *, off_session: bool) -> StripeError | None:
    """Try to pay ``intent`` with ``pm``; returns the card error Stripe would answer, if any."""
    card = cards.by_key(pm["_card"])
    intent["payment_method"] = pm["id"]
    if card.needs_authentication and not off_session:
        return _require_action(ctx, intent)
    decline = cards.AUTHENTICATION if card.needs_authentication else card.decline
    charge = objects.charge(ctx.store, intent=intent, pm=pm)
    if decline is not None:
        return _decline(ctx, intent, pm, charge, decline)
    _succeed(ctx, intent, pm, charge)
    return None


def _require_action(ctx: Ctx, intent: Obj) -> None:
    intent["status"] = "requires_action"
    intent["next_action"] = {
        "type": "use_stripe_sdk",
        "use_stripe_sdk": {"type": "three_d_secure_redirect"},
    }
    ctx.store.mark_dirty()
    ctx.emit("payment_intent.requires_action", intent)
    return None


def _decline(ctx: Ctx, intent: Obj, pm: Obj, charge: Obj, decline: cards.Decline) -> StripeError:
    charge.update(
        {
            "failure_code": decline.code,
            "failure_message": decline.message,
            "outcome": objects.charge_outcome(decline.decline_code),
            "status": "failed",
        }
    )
    ctx.store.put(charge)
    error = cards.card_error(decline, charge=charge["id"], payment_method=public(pm))
    intent.update(
        {
            "last_payment_error": error.body()["error"],
            "latest_charge": charge["id"],
            "payment_method": None,
            "status": "requires_payment_method",
        }
    )
    ctx.emit("charge.failed", charge)
    ctx.emit("payment_intent.payment_failed", intent)
    error.extra["payment_intent"] = public(intent)
    return error


def _succeed(ctx: Ctx, intent: Obj, pm: Obj, charge: Obj) -> None:
    manual = intent["capture_method"] == "manual"
    charge.update({"paid": True, "status": "succeeded"})
    intent.update({"last_payment_error": None, "latest_charge": charge["id"], "next_action": None})
    if manual:
        intent.update({"amount_capturable": intent["amount"], "status": "requires_capture"})
    else:
        _capture(ctx, intent, charge, intent["amount"])
    ctx.store.put(charge)
    _save_for_future(ctx, intent, pm)
    ctx.emit("charge.succeeded", charge)
    ctx.emit(
        "payment_intent.amount_capturable_updated" if manual else "payment_intent.succeeded", intent
    )


def _capture(ctx: Ctx, intent: Obj, charge: Obj, amount: int) -> None:
    txn = objects.balance_transaction(
        ctx.store,
        amount=amount,
        currency=charge["currency"],
        source=charge["id"],
        kind="charge",
        fee=processing_fee(amount),
    )
    ctx.store.put(txn)
    charge.update(
        {
            "amount_captured": amount,
            "balance_transaction": txn["id"],
            "captured": True,
            "receipt_number": f"{ctx.store.next_number():04d}-{ctx.store.next_number():04d}",
            "receipt_url": f"{ctx.url_base}/r/{charge['id']}",
        }
    )
    if amount < charge["amount"]:
        charge["amount_refunded"] = charge["amount"] - amount
    intent.update({"amount_capturable": 0, "amount_received": amount, "status": "succeeded"})


def _save_for_future(ctx: Ctx, intent: Obj, pm: Obj) -> None:
    cus = ctx.store.get("customer", intent["customer"])
    if intent["setup_future_usage"] and cus is not None and pm["customer"] is None:
        attach(ctx, pm, cus)


def pay(
    ctx: Ctx,
    *,
    amount: int,
    currency_code: str,
    customer_id: str | None,
    pm: Obj,
    description: str | None,
    metadata: dict[str, str] | None = None,
    off_session: bool = True,
    setup_future_usage: str | None = None,
) -> tuple[Obj, StripeError | None]:
    """Create and confirm a payment intent (invoices, checkout); returns it and any card error."""
    intent = objects.payment_intent(
        ctx.store,
        amount=amount,
        currency=currency_code,
        customer=customer_id,
        description=description,
        metadata=dict(metadata or {}),
        setup_future_usage=setup_future_usage,
        status="requires_confirmation",
        payment_method=pm["id"],
    )
    ctx.store.put(intent)
    ctx.emit("payment_intent.created", intent)
    error = confirm(ctx, intent, pm, off_session=off_session)
    if error is None and intent["status"] == "requires_action":
        error = cards.card_error(cards.AUTHENTICATION, payment_intent=public(intent))
    return intent, error


# --- payment intents -----------------------------------------------------------
@routes.post("/v1/payment_intents")
def payment_intent_create(ctx: Ctx, params: Params) -> Obj:
    """Create a payment intent, confirming it at once with ``confirm=true``."""
    code = currency(params)
    amount = params.int("amount", required=True, minimum=0)
    _check_minimum(amount, code)
    cus = None
    if params.str("customer"):
        cus = ctx.store.require("customer", params.str("customer"), param="customer")
    intent = objects.payment_intent(ctx.store, amount=amount, currency=code)
    intent["customer"] = cus["id"] if cus else None
    _set_intent_fields(intent, params)
    pm = _intent_payment_method(ctx, params, intent)
    if pm is not None:
        intent.update({"payment_method": pm["id"], "status": "requires_confirmation"})
    confirming = params.bool("confirm")
    if confirming:
        _check_confirmable(intent, pm, params)
    elif params.has("off_session"):
        raise invalid("off_session can only be used when confirm=true.", param="off_session")
    ctx.store.put(intent)
    ctx.emit("payment_intent.created", intent)
    if confirming:
        _confirm_or_raise(ctx, intent, pm, params)
    return intent


def _check_minimum(amount: int, code: str) -> None:
    minimum = MINIMUM_AMOUNTS.get(code, 50)
    if amount < minimum:
        raise invalid(
            f"Amount must be at least {minimum} in the minor unit of {code}.",
            param="amount",
            code="amount_too_small",
        )


def _set_intent_fields(intent: Obj, params: Params) -> None:
    set_strings(intent, params, ("description", "receipt_email", "statement_descriptor_suffix"))
    if params.has("capture_method"):
        intent["capture_method"] = params.str(
            "capture_method", choices=("automatic", "automatic_async", "manual")
        )
    if params.has("setup_future_usage"):
        intent["setup_future_usage"] = params.str(
            "setup_future_usage", choices=("on_session", "off_session")
        )
    if params.has("payment_method_types"):
        intent["payment_method_types"] = params.strings("payment_method_types")
        intent["automatic_payment_methods"] = None
    apply_metadata(intent, params)


def _intent_payment_method(ctx: Ctx, params: Params, intent: Obj) -> Obj | None:
    value = params.str("payment_method")
    if value is None:
        return None
    pm = payment_method_for(ctx, value, param="payment_method")
    if pm["customer"] is not None and pm["customer"] != intent["customer"]:
        raise invalid(
            f"The provided PaymentMethod {pm['id']} belongs to another Customer; pass that "
            "Customer as `customer` to use it.",
            param="payment_method",
        )
    return pm


def _check_confirmable(intent: Obj, pm: Obj | None, params: Params) -> Obj:
    if pm is None:
        raise invalid(
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "Update the PaymentIntent with a payment method and then confirm it again.",
            param="payment_method",
            code="payment_intent_unexpected_state",
        )
    if params.bool("off_session") and intent["customer"] is None:
        raise invalid("off_session payments need a `customer`.", param="customer")
    return pm


def _confirm_or_raise(ctx: Ctx, intent: Obj, pm: Obj, params: Params) -> None:
    error = confirm(ctx, intent, pm, off_session=params.bool("off_session"))
    ctx.store.mark_dirty()
    if error is not None:
        raise error


def _intent_state_error(intent: Obj, action: str) -> StripeError:
    return invalid(
        f"You cannot {action} this PaymentIntent because it has a status of {intent['status']}.",
        code="payment_intent_unexpected_state",
    )


routes.retrieve("/v1/payment_intents/{intent_id}", "payment_intent")


@routes.post("/v1/payment_intents/{intent_id}")
def payment_intent_update(ctx: Ctx, params: Params, intent_id: str) -> Obj:
    """Update description, metadata, and (before payment) amount and payment method."""
    intent = ctx.store.require("payment_intent", intent_id)
    open_states = ("requires_payment_method", "requires_confirmation")
    if {"amount", "payment_method"} & params.data.keys() and intent["status"] not in open_states:
        raise _intent_state_error(intent, "update")
    with ctx.changes(intent, "payment_intent.updated"):
        if params.has("amount"):
            intent["amount"] = params.int("amount", minimum=0)
            _check_minimum(intent["amount"], intent["currency"])
        pm = _intent_payment_method(ctx, params, intent)
        if pm is not None:
            intent.update({"payment_method": pm["id"], "status": "requires_confirmation"})
        _set_intent_fields(intent, params)
    return intent


@routes.post("/v1/payment_intents/{intent_id}/confirm")
def payment_intent_confirm(ctx: Ctx, params: Params, intent_id: str) -> Obj:
    """Confirm with the attached or given payment method."""
    intent = ctx.store.require("payment_intent", intent_id)
    if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
        raise _intent_state_error(intent, "confirm")
    pm = _intent_payment_method(ctx, params, intent) or ctx.store.get(
        "payment_method", intent["payment_method"]
    )
    _confirm_or_raise(ctx, intent, _check_confirmable(intent, pm, params), params)
    return intent


@routes.post("/v1/payment_intents/{intent_id}/capture")
def payment_intent_capture(ctx: Ctx, params: Params, intent_id: str) -> Obj:
    """Capture an authorised payment (``capture_method=manual``), fully or in part."""
    intent = ctx.store.require("payment_intent", intent_id)
    if intent["status"] != "requires_capture":
        raise _intent_state_error(intent, "capture")
    amount = params.int("amount_to_capture", minimum=1) or intent["amount_capturable"]
    if amount > intent["amount_capturable"]:
        raise invalid(
            "The amount to capture exceeds the amount capturable.", param="amount_to_capture"
        )
    charge = ctx.store.require("charge", intent["latest_charge"])
    _capture(ctx, intent, charge, amount)
    ctx.store.mark_dirty()
    ctx.emit("charge.captured", charge)
    ctx.emit("payment_intent.succeeded", intent)
    return intent


@routes.post("/v1/payment_intents/{intent_id}/cancel")
def payment_intent_cancel(ctx: Ctx, params: Params, intent_id: str) -> Obj:
    """Cancel a payment intent that has not succeeded."""
    intent = ctx.store.require("payment_intent", intent_id)
    if intent["status"] not in CANCELLABLE:
        raise _intent_state_error(intent, "cancel")
    intent.update(
        {
            "canceled_at": ctx.store.now(),
            "cancellation_reason": params.str("cancellation_reason"),
            "next_action": None,
            "status": "canceled",
        }
    )
    ctx.store.mark_dirty()
    ctx.emit("payment_intent.canceled", intent)
    return intent


routes.listing("/v1/payment_intents", "payment_intent", "customer")


# --- charges -----------------------------------------------------------------------
routes.retrieve("/v1/charges/{charge_id}", "charge")
routes.updating("/v1/charges/{charge_id}", "charge", "description")
routes.listing("/v1/charges", "charge", "customer", "payment_intent")


@routes.get("/v1/charges/{charge_id}/refunds")
def charge_refunds(ctx: Ctx, params: Params, charge_id: str) -> Obj:
    """A charge's refunds."""
    ctx.store.require("charge", charge_id)
    refunds = ctx.store.all("refund", lambda r: r["charge"] == charge_id)
    return paginate(refunds, params, f"/v1/charges/{charge_id}/refunds")


# --- refunds -------------------------------------------------------------------
@routes.post("/v1/refunds")
def refund_create(ctx: Ctx, params: Params) -> Obj:
    """Refund all or part of a charge, named directly or by its payment intent."""
    charge = _refundable_charge(ctx, params)
    remaining = charge["amount_captured"] - charge["amount_refunded"]
    if remaining <= 0:
        raise invalid(
            f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
        )
    amount = params.int("amount", minimum=1) or remaining
    if amount > remaining:
        raise invalid(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            param="amount",
            code="amount_too_large",
        )
    refund = objects.refund(ctx.store, charge_obj=charge, amount=amount)
    refund["reason"] = params.str(
        "reason", choices=("duplicate", "fraudulent", "requested_by_customer")
    )
    apply_metadata(refund, params)
    refund["balance_transaction"] = _refund_transaction(ctx, charge, refund)
    ctx.store.put(refund)
    ctx.emit("refund.created", refund)
    with ctx.changes(charge, "charge.refunded"):
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        refunds = ctx.store.all("refund", lambda r: r["charge"] == charge["id"])
        charge["refunds"] = objects.list_object(
            f"/v1/charges/{charge['id']}/refunds", [public(r) for r in refunds]
        )
    return refund


def _refundable_charge(ctx: Ctx, params: Params) -> Obj:
    intent_id = params.str("payment_intent")
    charge_id = params.str("charge")
    if intent_id:
        intent = ctx.store.require("payment_intent", intent_id, param="payment_intent")
        if intent["status"] != "succeeded":
            raise invalid(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        charge_id = intent["latest_charge"]
    elif not charge_id:
        raise invalid("One of `charge` or `payment_intent` is required.", param="charge")
    charge = ctx.store.require("charge", charge_id, param="charge")
    if not charge["captured"]:
        raise invalid(f"Charge {charge_id} has not been captured.", param="charge")
    return charge


def _refund_transaction(ctx: Ctx, charge: Obj, refund: Obj) -> str:
    txn = objects.balance_transaction(
        ctx.store,
        amount=-refund["amount"],
        currency=charge["currency"],
        source=refund["id"],
        kind="refund",
        fee=0,
    )
    return ctx.store.put(txn)["id"]


routes.retrieve("/v1/refunds/{refund_id}", "refund")
routes.updating("/v1/refunds/{refund_id}", "refund")
routes.listing("/v1/refunds", "refund", "charge", "payment_intent")


# --- balance transactions -----------------------------------------------------------
routes.retrieve("/v1/balance_transactions/{txn_id}", "balance_transaction")
routes.listing("/v1/balance_transactions", "balance_transaction", "source", "type")
