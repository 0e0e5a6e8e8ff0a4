"""Billing portal configurations and sessions, and what a customer can do in the portal page."""

from __future__ import annotations

from typing import Any

from .. import cards, objects
from ..context import Ctx, RouteTable, apply_metadata
from ..errors import invalid
from ..forms import Params
from ..lists import all_of, bool_filter, paginate
from . import billing, payments

Obj = dict[str, Any]
routes = RouteTable()

CANCEL_MODES = ("at_period_end", "immediately")


# --- configurations --------------------------------------------------------------
def _features(params: Params, current: Obj | None = None) -> Obj:
    """The ``features`` hash from parameters, over the current (or default) one."""
    features = current or {
        "customer_update": {"allowed_updates": ["email", "name"], "enabled": True},
        "invoice_history": {"enabled": True},
        "payment_method_update": {"enabled": True, "payment_method_configuration": None},
        "subscription_cancel": {
            "cancellation_reason": {"enabled": False, "options": []},
            "enabled": True,
            "mode": "at_period_end",
            "proration_behavior": "none",
        },
        "subscription_update": {
            "default_allowed_updates": ["price"],
            "enabled": True,
            "products": None,
            "proration_behavior": "none",
            "schedule_at_period_end": {"conditions": []},
            "trial_update_behavior": "end_trial",
            "billing_cycle_anchor": None,
        },
    }
    for name in ("customer_update", "invoice_history", "payment_method_update"):
        section = params.sub(name)
        if section.has("enabled"):
            features[name]["enabled"] = section.bool("enabled")
    cancel = params.sub("subscription_cancel")
    if cancel.has("enabled"):
        features["subscription_cancel"]["enabled"] = cancel.bool("enabled")
    if cancel.has("mode"):
        features["subscription_cancel"]["mode"] = cancel.str("mode", choices=CANCEL_MODES)
    _update_feature(params.sub("subscription_update"), features["subscription_update"])
    return features


def _update_feature(update: Params, feature: Obj) -> None:
    if update.has("enabled"):
        feature["enabled"] = update.bool("enabled")
    if update.has("default_allowed_updates"):
        feature["default_allowed_updates"] = update.strings("default_allowed_updates")
    if update.has("products"):
        feature["products"] = [
            {
                "adjustable_quantity": {"enabled": False, "maximum": None, "minimum": 1},
                "prices": product.strings("prices"),
                "product": product.str("product", required=True),
            }
            for product in update.subs("products")
        ]


@routes.post("/v1/billing_portal/configurations")
def configuration_create(ctx: Ctx, params: Params) -> Obj:
    """Create a portal configuration."""
    config = objects.portal_configuration(ctx.store, features=_features(params.sub("features")))
    _set_configuration_fields(config, params)
    _check_products(ctx, config)
    ctx.store.put(config)
    ctx.emit("billing_portal.configuration.created", config)
    return config


def _set_configuration_fields(config: Obj, params: Params) -> None:
    if params.has("business_profile"):
        profile = params.sub("business_profile")
        for key in ("headline", "privacy_policy_url", "terms_of_service_url"):
            if profile.has(key):
                config["business_profile"][key] = profile.str(key)
    if params.has("default_return_url"):
        config["default_return_url"] = params.str("default_return_url")
    if params.has("name"):
        config["name"] = params.str("name")
    if params.has("active"):
        config["active"] = params.bool("active")
    apply_metadata(config, params)


def _check_products(ctx: Ctx, config: Obj) -> None:
    for index, entry in enumerate(config["features"]["subscription_update"]["products"] or []):
        param = f"features[subscription_update][products][{index}]"
        ctx.store.require("product", entry["product"], param=f"{param}[product]")
        for price_id in entry["prices"]:
            price = ctx.store.require("price", price_id, param=f"{param}[prices]")
            if price["product"] != entry["product"]:
                raise invalid(
                    f"The price {price_id} does not belong to {entry['product']}.", param=param
                )


routes.retrieve("/v1/billing_portal/configurations/{config_id}", "billing_portal.configuration")


@routes.post("/v1/billing_portal/configurations/{config_id}")
def configuration_update(ctx: Ctx, params: Params, config_id: str) -> Obj:
    """Update a portal configuration."""
    config = ctx.store.require("billing_portal.configuration", config_id)
    with ctx.changes(config, "billing_portal.configuration.updated"):
        config["features"] = _features(params.sub("features"), config["features"])
        _set_configuration_fields(config, params)
        _check_products(ctx, config)
        config["updated"] = ctx.store.now()
    return config


@routes.get("/v1/billing_portal/configurations")
def configuration_list(ctx: Ctx, params: Params) -> Obj:
    """Portal configurations by ``active`` and ``is_default``."""
    where = all_of(bool_filter(params, "active"), bool_filter(params, "is_default"))
    configs = ctx.store.all("billing_portal.configuration", where)
    return paginate(configs, params, "/v1/billing_portal/configurations")


def default_configuration(ctx: Ctx) -> Obj:
    """The account's default configuration, made on first use."""
    found = ctx.store.all("billing_portal.configuration", lambda c: c["is_default"])
    if found:
        return found[0]
    config = objects.portal_configuration(ctx.store, features=_features(Params()), is_default=True)
    return ctx.store.put(config)


# --- sessions ----------------------------------------------------------------------
@routes.post("/v1/billing_portal/sessions")
def session_create(ctx: Ctx, params: Params) -> Obj:
    """A portal session for ``customer`` whose ``url`` is the emulator's portal page."""
    cus = ctx.store.require("customer", params.str("customer", required=True), param="customer")
    config_id = params.str("configuration")
    if config_id:
        config = ctx.store.require("billing_portal.configuration", config_id, param="configuration")
    else:
        config = default_configuration(ctx)
    return_url = params.str("return_url") or config["default_return_url"]
    if return_url is None:
        raise invalid(
            "You must pass a return_url or set a default return URL on the configuration.",
            param="return_url",
        )
    session = objects.portal_session(
        ctx.store,
        customer_id=cus["id"],
        configuration_id=config["id"],
        url_base=ctx.url_base,
        return_url=return_url,
        locale=params.str("locale"),
    )
    ctx.store.put(session)
    ctx.emit("billing_portal.session.created", session)
    return session


# --- what the portal page does ------------------------------------------------------
def customer_subscription(ctx: Ctx, session: Obj, sub_id: str) -> Obj:
    """One of the session customer's subscriptions."""
    sub = ctx.store.require("subscription", sub_id, param="subscription")
    if sub["customer"] != session["customer"]:
        raise invalid("That subscription belongs to another customer.", param="subscription")
    return sub


def configuration_of(ctx: Ctx, session: Obj) -> Obj:
    """The session's configuration."""
    return ctx.store.require("billing_portal.configuration", session["configuration"])


def cancel(ctx: Ctx, session: Obj, sub_id: str, *, immediately: bool) -> Obj:
    """Cancel at period end (or now, when the configuration allows it)."""
    sub = customer_subscription(ctx, session, sub_id)
    feature = configuration_of(ctx, session)["features"]["subscription_cancel"]
    if not feature["enabled"]:
        raise invalid("Cancelling is not enabled in this portal.")
    if immediately and feature["mode"] != "immediately":
        raise invalid("This portal cancels at the end of the period only.")
    if immediately:
        return billing.cancel_now(ctx, sub)
    with ctx.changes(sub, "customer.subscription.updated"):
        billing.schedule_cancel(sub, True, ctx.store.now())
    return sub


def renew(ctx: Ctx, session: Obj, sub_id: str) -> Obj:
    """Undo a cancellation at period end."""
    sub = customer_subscription(ctx, session, sub_id)
    with ctx.changes(sub, "customer.subscription.updated"):
        billing.schedule_cancel(sub, False, ctx.store.now())
    return sub


def allowed_prices(ctx: Ctx, session: Obj, sub: Obj) -> list[Obj]:
    """Prices the customer may switch to: the configuration's, else the subscription's products'."""
    feature = configuration_of(ctx, session)["features"]["subscription_update"]
    if not feature["enabled"]:
        return []
    current = {item["price"]["id"] for item in sub["items"]["data"]}
    if feature["products"]:
        ids = [price_id for entry in feature["products"] for price_id in entry["prices"]]
        candidates = [ctx.store.get("price", price_id) for price_id in ids]
    else:
        products = {item["price"]["product"] for item in sub["items"]["data"]}
        candidates = ctx.store.all("price", lambda p: p["product"] in products)
    return [
        price
        for price in candidates
        if price and price["active"] and price["type"] == "recurring" and price["id"] not in current
    ]


def change_plan(ctx: Ctx, session: Obj, sub_id: str, price_id: str) -> Obj:
    """Switch the subscription's first item to another allowed price (no proration)."""
    sub = customer_subscription(ctx, session, sub_id)
    if sub["status"] in billing.ENDED:
        raise invalid("This subscription has ended.", param="subscription")
    if price_id not in {price["id"] for price in allowed_prices(ctx, session, sub)}:
        raise invalid("That plan is not available in this portal.", param="price")
    item_id = sub["items"]["data"][0]["id"]
    params = Params({"items": [{"id": item_id, "price": price_id}], "proration_behavior": "none"})
    return billing.subscription_update(ctx, params, sub_id)


def update_card(ctx: Ctx, session: Obj, card_value: str, *, name: str | None) -> Obj:
    """Save a new card as the default for invoices and the customer's subscriptions."""
    cus = ctx.store.require("customer", session["customer"])
    pm = payments.new_payment_method(
        ctx, cards.from_any(card_value, param="card"), email=cus["email"], name=name
    )
    payments.attach(ctx, pm, cus)
    with ctx.changes(cus, "customer.updated"):
        cus["invoice_settings"]["default_payment_method"] = pm["id"]
    for sub in ctx.store.all("subscription", lambda s: s["customer"] == cus["id"]):
        if sub["default_payment_method"] and sub["status"] not in billing.ENDED:
            with ctx.changes(sub, "customer.subscription.updated"):
                sub["default_payment_method"] = pm["id"]
    return pm


def pay_invoice(ctx: Ctx, session: Obj, invoice_id: str) -> Obj:
    """Pay one of the customer's open invoices with the default card."""
    inv = ctx.store.require("invoice", invoice_id, param="invoice")
    if inv["customer"] != session["customer"]:
        raise invalid("That invoice belongs to another customer.", param="invoice")
    return billing.invoice_pay(ctx, Params(), invoice_id)
