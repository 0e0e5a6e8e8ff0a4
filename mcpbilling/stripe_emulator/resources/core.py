"""Account, customers, products and prices."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .. import objects
from ..context import Ctx, RouteTable, apply_metadata, currency, set_strings
from ..errors import StripeError, invalid, no_such
from ..expand import virtual
from ..forms import Params
from ..lists import all_of, bool_filter, field_filter, paginate, range_filter
from ..store import Store, public
from . import payments

Obj = dict[str, Any]
routes = RouteTable()

CUSTOMER_STRINGS = ("email", "name", "description", "phone")
PRODUCT_STRINGS = ("description", "statement_descriptor", "unit_label", "url", "tax_code")
INTERVALS = ("day", "week", "month", "year")


# --- account -----------------------------------------------------------------
@routes.get("/v1/account")
def account_retrieve(ctx: Ctx, params: Params) -> Obj:
    """The account the key belongs to (dj-stripe's first call)."""
    return objects.account(ctx.store)


@routes.get("/v1/accounts/{account_id}")
def account_retrieve_by_id(ctx: Ctx, params: Params, account_id: str) -> Obj:
    """The platform account by id; there are no connected accounts."""
    if account_id != ctx.store.account_id:
        raise no_such("account", account_id)
    return objects.account(ctx.store)


# --- customers ---------------------------------------------------------------
@routes.post("/v1/customers")
def customer_create(ctx: Ctx, params: Params) -> Obj:
    """Create a customer, attaching ``payment_method`` when given."""
    cus = objects.customer(ctx.store, email=params.str("email"), name=params.str("name"))
    set_strings(cus, params, CUSTOMER_STRINGS)
    _set_customer_extras(cus, params)
    apply_metadata(cus, params)
    alias = params.str("payment_method")
    pm = payments.payment_method_for(ctx, alias, param="payment_method") if alias else None
    if pm is not None:
        payments.check_attachable(pm, cus["id"])
    default = params.sub("invoice_settings").str("default_payment_method")
    save_customer(ctx, cus)
    if pm is not None:
        payments.attach(ctx, pm, cus)
        if default in (alias, pm["id"]):
            with ctx.changes(cus, "customer.updated"):
                cus["invoice_settings"]["default_payment_method"] = pm["id"]
            return cus
    if default:
        with ctx.changes(cus, "customer.updated"):
            _set_default_payment_method(ctx, cus, default)
    return cus


def save_customer(ctx: Ctx, cus: Obj) -> Obj:
    """Store a new customer and emit ``customer.created``."""
    ctx.store.put(cus)
    ctx.emit("customer.created", cus)
    return cus


@routes.get("/v1/customers/{customer_id}")
def customer_retrieve(ctx: Ctx, params: Params, customer_id: str) -> Obj:
    """A customer; a deleted one comes back as Stripe's deleted stub."""
    cus = ctx.store.get("customer", customer_id)
    if cus is None:
        raise no_such("customer", customer_id)
    if cus.get("deleted"):
        return {"id": customer_id, "object": "customer", "deleted": True}
    return cus


@routes.post("/v1/customers/{customer_id}")
def customer_update(ctx: Ctx, params: Params, customer_id: str) -> Obj:
    """Update a customer's fields, metadata and default payment method."""
    cus = ctx.store.require("customer", customer_id)
    settings = params.sub("invoice_settings")
    with ctx.changes(cus, "customer.updated"):
        set_strings(cus, params, CUSTOMER_STRINGS)
        _set_customer_extras(cus, params)
        apply_metadata(cus, params)
        if settings.has("default_payment_method"):
            _set_default_payment_method(ctx, cus, settings.str("default_payment_method"))
    return cus


def _set_customer_extras(cus: Obj, params: Params) -> None:
    if params.has("address"):
        address = params.sub("address").data
        cus["address"] = {**objects.empty_address(), **address} if address else None
    if params.has("preferred_locales"):
        cus["preferred_locales"] = params.strings("preferred_locales")


def _set_default_payment_method(ctx: Ctx, cus: Obj, pm_id: str | None) -> None:
    if pm_id:
        payments.attached_to(ctx, cus, pm_id, param="invoice_settings[default_payment_method]")
    cus["invoice_settings"]["default_payment_method"] = pm_id


@routes.delete("/v1/customers/{customer_id}")
def customer_delete(ctx: Ctx, params: Params, customer_id: str) -> Obj:
    """Delete a customer, cancelling its subscriptions as Stripe does."""
    from . import billing

    cus = ctx.store.require("customer", customer_id)
    for sub in ctx.store.all("subscription", lambda s: s["customer"] == customer_id):
        if sub["status"] != "canceled":
            billing.cancel_now(ctx, sub)
    cus["deleted"] = True
    ctx.store.mark_dirty()
    ctx.emit("customer.deleted", cus)
    return {"id": customer_id, "object": "customer", "deleted": True}


routes.listing("/v1/customers", "customer", "email")


_CLAUSE = re.compile(
    r"^\s*(metadata\[['\"](?P<meta>[^'\"]+)['\"]\]|(?P<field>\w+))\s*(?P<op>:|~)\s*['\"](?P<value>[^'\"]*)['\"]\s*$"
)


@routes.get("/v1/customers/search")
def customer_search(ctx: Ctx, params: Params) -> Obj:
    """Search customers by ``email``, ``name``, ``phone`` or ``metadata['key']``, joined by AND."""
    query = params.str("query", required=True)
    tests = [_clause(text) for text in re.split(r"\s+AND\s+", query)]
    found = ctx.store.all("customer", lambda cus: all(test(cus) for test in tests))
    page = paginate(found, params, "/v1/customers/search")
    page.update({"object": "search_result", "next_page": None, "total_count": len(found)})
    return page


def _clause(text: str):
    match = _CLAUSE.match(text)
    if not match:
        raise invalid(f"Invalid search query: {text}", param="query")
    meta, field, op, value = match["meta"], match["field"], match["op"], match["value"]

    def test(cus: Obj) -> bool:
        actual = (cus["metadata"].get(meta) if meta else cus.get(field)) or ""
        return value.lower() in actual.lower() if op == "~" else actual == value

    return test


# --- products ----------------------------------------------------------------
@routes.post("/v1/products")
def product_create(ctx: Ctx, params: Params) -> Obj:
    """Create a product, with a custom ``id`` and ``default_price_data`` when given."""
    product_id = params.str("id")
    if product_id and ctx.store.find(product_id) is not None:
        raise invalid("Product already exists.", param="id", code="resource_already_exists")
    prod = objects.product(ctx.store, name=params.str("name", required=True))
    if product_id:
        prod["id"] = product_id
    _set_product_fields(prod, params)
    price = None
    if params.has("default_price_data"):
        price = _build_price(ctx, params.sub("default_price_data"), prod)
        prod["default_price"] = price["id"]
    _save_product(ctx, prod)
    if price is not None:
        _save_price(ctx, price)
    return prod


def _save_product(ctx: Ctx, prod: Obj) -> Obj:
    """Store a new product and emit ``product.created``."""
    ctx.store.put(prod)
    ctx.emit("product.created", prod)
    return prod


def _set_product_fields(prod: Obj, params: Params) -> None:
    set_strings(prod, params, ("name", *PRODUCT_STRINGS))
    if params.has("active"):
        prod["active"] = params.bool("active")
    if params.has("images"):
        prod["images"] = params.strings("images")
    if params.has("marketing_features"):
        prod["marketing_features"] = [
            {"name": feature.str("name", required=True)}
            for feature in params.subs("marketing_features")
        ]
    apply_metadata(prod, params)


routes.retrieve("/v1/products/{product_id}", "product")


@routes.post("/v1/products/{product_id}")
def product_update(ctx: Ctx, params: Params, product_id: str) -> Obj:
    """Update a product, including its ``default_price``."""
    prod = ctx.store.require("product", product_id)
    with ctx.changes(prod, "product.updated"):
        _set_product_fields(prod, params)
        if params.has("default_price"):
            price = ctx.store.require("price", params.str("default_price"), param="default_price")
            if price["product"] != prod["id"]:
                raise invalid(
                    "The default price must belong to this product.", param="default_price"
                )
            prod["default_price"] = price["id"]
        prod["updated"] = ctx.store.now()
    return prod


@routes.delete("/v1/products/{product_id}")
def product_delete(ctx: Ctx, params: Params, product_id: str) -> Obj:
    """Delete a product that has no prices."""
    prod = ctx.store.require("product", product_id)
    if ctx.store.all("price", lambda price: price["product"] == product_id):
        raise invalid(
            "This product cannot be deleted because it has one or more user-created prices.",
            param="id",
        )
    prod["deleted"] = True
    ctx.store.mark_dirty()
    ctx.emit("product.deleted", prod)
    return {"id": product_id, "object": "product", "deleted": True}


@routes.get("/v1/products/{product_id}/features")
def product_feature_list(ctx: Ctx, params: Params, product_id: str) -> Obj:
    """A product's entitlement features: none, as the product attaches none (dj-stripe reads it)."""
    ctx.store.require("product", product_id)
    return paginate([], params, f"/v1/products/{product_id}/features")


@routes.get("/v1/products")
def product_list(ctx: Ctx, params: Params) -> Obj:
    """Products by ``active``, ``ids[]`` and ``created``."""
    ids = set(params.strings("ids"))
    where = all_of(
        bool_filter(params, "active"),
        range_filter(params),
        lambda prod: not ids or prod["id"] in ids,
    )
    return paginate(ctx.store.all("product", where), params, "/v1/products")


# --- prices ------------------------------------------------------------------
@routes.post("/v1/prices")
def price_create(ctx: Ctx, params: Params) -> Obj:
    """Create a one-time or recurring (licensed or metered) per-unit price."""
    prod = _price_product(ctx, params)
    price = _build_price(ctx, params, prod)
    _claim_lookup_key(ctx, price, params)
    if ctx.store.get("product", prod["id"]) is None:
        _save_product(ctx, prod)
    return _save_price(ctx, price)


def inline_price(ctx: Ctx, data: Params) -> Obj:
    """A price from ``price_data`` (checkout, subscriptions): inactive, as Stripe makes them."""
    prod = _price_product(ctx, data)
    price = _build_price(ctx, data, prod)
    price["active"] = False
    if ctx.store.get("product", prod["id"]) is None:
        _save_product(ctx, prod)
    return ctx.store.put(price)


def _price_product(ctx: Ctx, params: Params) -> Obj:
    """The ``product`` a price is for, or a new (not yet stored) one from ``product_data``."""
    product_id = params.str("product")
    if product_id is not None:
        return ctx.store.require("product", product_id, param=params.name("product"))
    data = params.sub("product_data", required=True)
    prod = objects.product(ctx.store, name=data.str("name", required=True))
    set_strings(prod, data, PRODUCT_STRINGS)
    apply_metadata(prod, data)
    return prod


def _build_price(ctx: Ctx, params: Params, prod: Obj) -> Obj:
    if params.str("billing_scheme", choices=("per_unit", "tiered")) == "tiered":
        raise invalid(
            "Tiered prices are not supported by the Stripe emulator.", param="billing_scheme"
        )
    price = objects.price(
        ctx.store,
        product_id=prod["id"],
        currency=currency(params),
        unit_amount_decimal=_unit_amount(params),
        recurring_hash=_recurring(ctx, params),
    )
    set_strings(price, params, ("nickname", "tax_behavior"))
    if params.has("active"):
        price["active"] = params.bool("active")
    apply_metadata(price, params)
    return price


def _unit_amount(params: Params) -> Decimal:
    amount = params.int("unit_amount", minimum=0)
    if amount is not None:
        return Decimal(amount)
    decimal = params.decimal("unit_amount_decimal")
    if decimal is None:
        raise invalid(
            "You must pass either `unit_amount` or `unit_amount_decimal`.",
            param=params.name("unit_amount"),
        )
    if decimal < 0:
        raise invalid(
            "unit_amount_decimal must be at least 0.", param=params.name("unit_amount_decimal")
        )
    return decimal


def _recurring(ctx: Ctx, params: Params) -> Obj | None:
    if not params.has("recurring"):
        return None
    rec = params.sub("recurring")
    usage_type = rec.str("usage_type", choices=("licensed", "metered")) or "licensed"
    meter_id = rec.str("meter")
    if usage_type == "metered" and meter_id is None:
        raise invalid(
            "Metered prices must be backed by a meter: pass recurring[meter].",
            param=rec.name("meter"),
        )
    if meter_id is not None:
        ctx.store.require("billing.meter", meter_id, param=rec.name("meter"))
    return objects.recurring(
        interval=rec.str("interval", required=True, choices=INTERVALS),
        interval_count=rec.int("interval_count", minimum=1) or 1,
        usage_type=usage_type,
        meter=meter_id,
        trial=rec.int("trial_period_days", minimum=0),
    )


def _save_price(ctx: Ctx, price: Obj) -> Obj:
    """Store a new price and emit ``price.created``."""
    ctx.store.put(price)
    ctx.emit("price.created", price)
    return price


def _claim_lookup_key(ctx: Ctx, price: Obj, params: Params) -> None:
    key = params.str("lookup_key")
    if not params.has("lookup_key"):
        return
    if key:
        holder = next(iter(ctx.store.all("price", lambda p: p["lookup_key"] == key)), None)
        if holder is not None and holder["id"] != price["id"]:
            if not params.bool("transfer_lookup_key"):
                raise invalid(
                    f"A price (`{holder['id']}`) already uses that lookup key.",
                    param="lookup_key",
                )
            with ctx.changes(holder, "price.updated"):
                holder["lookup_key"] = None
    price["lookup_key"] = key


routes.retrieve("/v1/prices/{price_id}", "price")


@routes.post("/v1/prices/{price_id}")
def price_update(ctx: Ctx, params: Params, price_id: str) -> Obj:
    """Update a price's ``active``, ``nickname``, ``lookup_key`` and metadata."""
    price = ctx.store.require("price", price_id)
    with ctx.changes(price, "price.updated"):
        set_strings(price, params, ("nickname", "tax_behavior"))
        if params.has("active"):
            price["active"] = params.bool("active")
        _claim_lookup_key(ctx, price, params)
        apply_metadata(price, params)
    return price


@routes.get("/v1/prices")
def price_list(ctx: Ctx, params: Params) -> Obj:
    """Prices by ``product``, ``active``, ``type``, ``currency``, ``lookup_keys``, ``recurring``."""
    keys = set(params.strings("lookup_keys"))
    rec = params.sub("recurring")
    where = all_of(
        field_filter(params, "product", "type", "currency"),
        bool_filter(params, "active"),
        range_filter(params),
        lambda price: not keys or price["lookup_key"] in keys,
        lambda price: _recurring_matches(price, rec),
    )
    return paginate(ctx.store.all("price", where), params, "/v1/prices")


def _recurring_matches(price: Obj, rec: Params) -> bool:
    if not rec.data:
        return True
    current = price["recurring"] or {}
    return all(current.get(key) == value for key, value in rec.data.items())


@virtual("customer", "sources")
def _customer_sources(store: Store, cus: Obj) -> Obj:
    """Legacy sources: the emulator has only payment methods."""
    return objects.list_object(f"/v1/customers/{cus['id']}/sources", [])


@virtual("customer", "tax_ids")
def _customer_tax_ids(store: Store, cus: Obj) -> Obj:
    return objects.list_object(f"/v1/customers/{cus['id']}/tax_ids", [])


@virtual("customer", "subscriptions")
def _customer_subscriptions(store: Store, cus: Obj) -> Obj:
    subs = store.all("subscription", lambda sub: sub["customer"] == cus["id"])
    return objects.list_object(
        f"/v1/customers/{cus['id']}/subscriptions", [public(s) for s in subs]
    )


@virtual("price", "currency_options")
def _price_currency_options(store: Store, price: Obj) -> Obj:
    option = {
        "custom_unit_amount": None,
        "tax_behavior": price["tax_behavior"],
        "unit_amount": price["unit_amount"],
        "unit_amount_decimal": price["unit_amount_decimal"],
    }
    return {price["currency"]: option}


@virtual("price", "tiers")
def _price_tiers(store: Store, price: Obj) -> None:
    """Per-unit prices have no tiers."""
    return None


def price_amount(price: Obj, quantity: int) -> int:
    """What ``quantity`` units of a price cost, in the currency's minor unit, rounded half up."""
    exact = Decimal(price["unit_amount_decimal"]) * quantity
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def require_active_price(ctx: Ctx, price_id: str | None, *, param: str) -> Obj:
    """A price that can be sold now."""
    price = ctx.store.require("price", price_id, param=param)
    if not price["active"]:
        raise StripeError(
            400,
            "invalid_request_error",
            f"The price specified is inactive. This field only accepts active prices. ({price_id})",
            param=param,
        )
    return price
