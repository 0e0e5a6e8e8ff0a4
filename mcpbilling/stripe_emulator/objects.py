"""Builders for every emulated object, with the top-level keys of Stripe's own examples."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .store import Store, random_token

Obj = dict[str, Any]

ACCOUNT_NAME = "MCP Billing (Stripe emulator)"


def empty_address() -> Obj:
    """An address with every line null."""
    return dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))


def list_object(url: str, data: list[Obj], has_more: bool = False) -> Obj:
    """A Stripe list."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def decimal_string(value: Decimal | int) -> str:
    """A decimal as Stripe writes it: no exponent, no trailing zeros."""
    text = format(Decimal(value), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


ZERO_DECIMAL = {
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
}


def format_amount(amount: int | Decimal, currency: str) -> str:
    """An amount in a currency's minor unit for people: ``$20.00``, ``1,000 JPY``."""
    if currency in ZERO_DECIMAL:
        return f"{Decimal(amount):,.0f} {currency.upper()}"
    major = Decimal(amount) / 100
    places = max(2, -major.normalize().as_tuple().exponent)
    text = f"{major:,.{places}f}"
    return f"${text}" if currency == "usd" else f"{text} {currency.upper()}"


def _common(store: Store, kind: str, prefix: str, *, length: int = 24) -> Obj:
    return {
        "id": store.new_id(prefix, length),
        "object": kind,
        "created": store.now(),
        "livemode": False,
    }


def account(store: Store) -> Obj:
    """The platform account behind every key (``GET /v1/account``)."""
    requirements = {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": [],
        "disabled_reason": None,
        "errors": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
    }
    return {
        "id": store.account_id,
        "object": "account",
        "business_profile": {
            "annual_revenue": None,
            "estimated_worker_count": None,
            "mcc": None,
            "minority_owned_business_designation": None,
            "name": ACCOUNT_NAME,
            "product_description": None,
            "support_address": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": None,
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": "US",
        "created": 1_700_000_000,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "emulator@example.com",
        "external_accounts": list_object(f"/v1/accounts/{store.account_id}/external_accounts", []),
        "future_requirements": dict(requirements),
        "metadata": {},
        "payouts_enabled": True,
        "requirements": dict(requirements),
        "settings": {
            "branding": {
                "icon": None,
                "logo": None,
                "primary_color": None,
                "secondary_color": None,
            },
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
            },
            "dashboard": {"display_name": ACCOUNT_NAME, "timezone": "Etc/UTC"},
            "payments": {"statement_descriptor": "MCP BILLING"},
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            },
        },
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": "standard",
    }


def customer(store: Store, *, email: str | None, name: str | None, **fields: Any) -> Obj:
    """A customer; ``fields`` override the defaults (description, phone, metadata, ...)."""
    obj = _common(store, "customer", "cus_", length=14)
    obj.update(
        {
            "address": None,
            "balance": 0,
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": None,
            "discount": None,
            "email": email,
            "invoice_prefix": random_token(8).upper(),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "metadata": {},
            "name": name,
            "next_invoice_sequence": 1,
            "phone": None,
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }
    )
    obj.update(fields)
    return obj


def product(store: Store, *, name: str, **fields: Any) -> Obj:
    """A product."""
    obj = _common(store, "product", "prod_", length=14)
    obj.update(
        {
            "active": True,
            "default_price": None,
            "description": None,
            "images": [],
            "marketing_features": [],
            "metadata": {},
            "name": name,
            "package_dimensions": None,
            "shippable": None,
            "statement_descriptor": None,
            "tax_code": None,
            "type": "service",
            "unit_label": None,
            "updated": obj["created"],
            "url": None,
        }
    )
    obj.update(fields)
    return obj


def recurring(
    interval: str, interval_count: int, usage_type: str, meter: str | None, trial: int | None
) -> Obj:
    """A price's ``recurring`` hash."""
    return {
        "interval": interval,
        "interval_count": interval_count,
        "meter": meter,
        "trial_period_days": trial,
        "usage_type": usage_type,
    }


def price(
    store: Store,
    *,
    product_id: str,
    currency: str,
    unit_amount_decimal: Decimal,
    recurring_hash: Obj | None,
    **fields: Any,
) -> Obj:
    """A per-unit price, one-time or recurring."""
    obj = _common(store, "price", "price_")
    whole = unit_amount_decimal == unit_amount_decimal.to_integral_value()
    obj.update(
        {
            "active": True,
            "billing_scheme": "per_unit",
            "currency": currency,
            "custom_unit_amount": None,
            "lookup_key": None,
            "metadata": {},
            "nickname": None,
            "product": product_id,
            "recurring": recurring_hash,
            "tax_behavior": "unspecified",
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if recurring_hash else "one_time",
            "unit_amount": int(unit_amount_decimal) if whole else None,
            "unit_amount_decimal": decimal_string(unit_amount_decimal),
        }
    )
    obj.update(fields)
    return obj


def plan_from_price(price_obj: Obj) -> Obj:
    """The legacy ``plan`` view of a recurring price, as subscription items carry it."""
    rec = price_obj["recurring"] or {}
    return {
        "id": price_obj["id"],
        "object": "plan",
        "active": price_obj["active"],
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": price_obj["billing_scheme"],
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "interval": rec.get("interval"),
        "interval_count": rec.get("interval_count"),
        "livemode": False,
        "metadata": dict(price_obj["metadata"]),
        "meter": rec.get("meter"),
        "nickname": price_obj["nickname"],
        "product": price_obj["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": rec.get("trial_period_days"),
        "usage_type": rec.get("usage_type"),
    }


def card_details(card: Obj) -> Obj:
    """A payment method's ``card`` hash from a test card's brand, last4 and funding."""
    return {
        "brand": card["brand"],
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": "pass",
        },
        "country": "US",
        "display_brand": card["brand"],
        "exp_month": card["exp_month"],
        "exp_year": card["exp_year"],
        "fingerprint": card["fingerprint"],
        "funding": card["funding"],
        "generated_from": None,
        "last4": card["last4"],
        "networks": {"available": [card["brand"]], "preferred": None},
        "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def billing_details(email: str | None = None, name: str | None = None) -> Obj:
    """A ``billing_details`` hash."""
    return {
        "address": empty_address(),
        "email": email,
        "name": name,
        "phone": None,
        "tax_id": None,
    }


def payment_method(store: Store, *, card: Obj, **fields: Any) -> Obj:
    """A card payment method; ``card`` is a test card from the catalogue."""
    obj = _common(store, "payment_method", "pm_")
    obj.update(
        {
            "allow_redisplay": "unspecified",
            "billing_details": billing_details(),
            "card": card_details(card),
            "customer": None,
            "customer_account": None,
            "metadata": {},
            "type": "card",
            "_card": card["key"],
        }
    )
    obj.update(fields)
    return obj


def payment_intent(store: Store, *, amount: int, currency: str, **fields: Any) -> Obj:
    """A payment intent awaiting a payment method."""
    obj = _common(store, "payment_intent", "pi_")
    obj.update(
        {
            "amount": amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": 0,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": f"{obj['id']}_secret_{random_token(25)}",
            "confirmation_method": "automatic",
            "currency": currency,
            "customer": None,
            "customer_account": None,
            "description": None,
            "excluded_payment_method_types": None,
            "last_payment_error": None,
            "latest_charge": None,
            "managed_payments": None,
            "metadata": {},
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": None,
            "payment_method_configuration_details": None,
            "payment_method_options": {
                "card": {
                    "installments": None,
                    "mandate_options": None,
                    "network": None,
                    "request_three_d_secure": "automatic",
                }
            },
            "payment_method_types": ["card"],
            "processing": None,
            "receipt_email": None,
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "source": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "requires_payment_method",
            "transfer_data": None,
            "transfer_group": None,
        }
    )
    obj.update(fields)
    return obj


def charge_outcome(decline_code: str | None) -> Obj:
    """A charge's ``outcome`` for an authorised or declined card."""
    declined = decline_code is not None
    return {
        "advice_code": "try_again_later" if declined else None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "declined_by_network" if declined else "approved_by_network",
        "reason": decline_code,
        "risk_level": "normal",
        "risk_score": 20,
        "seller_message": (
            "The bank did not return any further details with this decline."
            if declined
            else "Payment complete."
        ),
        "type": "issuer_declined" if declined else "authorized",
    }


def charge(store: Store, *, intent: Obj, pm: Obj, **fields: Any) -> Obj:
    """A charge for a payment intent, paid with a card payment method."""
    obj = _common(store, "charge", "ch_")
    card = pm["card"]
    obj.update(
        {
            "amount": intent["amount"],
            "amount_captured": 0,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": None,
            "billing_details": dict(pm["billing_details"]),
            "calculated_statement_descriptor": "MCP BILLING",
            "captured": False,
            "currency": intent["currency"],
            "customer": intent["customer"],
            "description": intent["description"],
            "disputed": False,
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "fraud_details": {},
            "metadata": dict(intent["metadata"]),
            "on_behalf_of": None,
            "outcome": charge_outcome(None),
            "paid": False,
            "payment_intent": intent["id"],
            "payment_method": pm["id"],
            "payment_method_details": {
                "card": {
                    "amount_authorized": intent["amount"],
                    "brand": card["brand"],
                    "checks": card["checks"],
                    "country": card["country"],
                    "exp_month": card["exp_month"],
                    "exp_year": card["exp_year"],
                    "fingerprint": card["fingerprint"],
                    "funding": card["funding"],
                    "last4": card["last4"],
                    "network": card["brand"],
                    "network_transaction_id": random_token(15),
                    "three_d_secure": None,
                    "wallet": None,
                },
                "type": "card",
            },
            "receipt_email": intent["receipt_email"],
            "receipt_number": None,
            "receipt_url": None,
            "refunded": False,
            "refunds": list_object(f"/v1/charges/{obj['id']}/refunds", []),
            "review": None,
            "shipping": None,
            "source": None,
            "source_transfer": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "pending",
            "transfer_data": None,
            "transfer_group": None,
        }
    )
    obj.update(fields)
    return obj


def balance_transaction(
    store: Store, *, amount: int, currency: str, source: str, kind: str, fee: int
) -> Obj:
    """A balance transaction for a charge or a refund."""
    obj = _common(store, "balance_transaction", "txn_")
    del obj["livemode"]
    fee_details = [
        {
            "amount": fee,
            "application": None,
            "currency": currency,
            "description": "Stripe processing fees",
            "type": "stripe_fee",
        }
    ]
    obj.update(
        {
            "amount": amount,
            "available_on": obj["created"] + 2 * 86400,
            "balance_type": "payments",
            "currency": currency,
            "description": None,
            "exchange_rate": None,
            "fee": fee,
            "fee_details": fee_details if fee else [],
            "net": amount - fee,
            "reporting_category": kind,
            "source": source,
            "status": "pending",
            "type": kind,
        }
    )
    return obj


def refund(store: Store, *, charge_obj: Obj, amount: int, **fields: Any) -> Obj:
    """A refund of (part of) a charge."""
    obj = _common(store, "refund", "re_")
    del obj["livemode"]
    obj.update(
        {
            "amount": amount,
            "balance_transaction": None,
            "charge": charge_obj["id"],
            "currency": charge_obj["currency"],
            "customer": charge_obj["customer"],
            "customer_account": None,
            "destination_details": {
                "card": {
                    "reference_status": "pending",
                    "reference_type": "acquirer_reference_number",
                    "type": "refund",
                },
                "type": "card",
            },
            "metadata": {},
            "payment_intent": charge_obj["payment_intent"],
            "payment_method": charge_obj["payment_method"],
            "reason": None,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
    )
    obj.update(fields)
    return obj


def subscription_item(
    store: Store,
    *,
    subscription_id: str,
    price_obj: Obj,
    quantity: int | None,
    period: tuple[int, int],
) -> Obj:
    """A subscription item; the current period lives here in this API version."""
    obj = _common(store, "subscription_item", "si_", length=14)
    del obj["livemode"]
    obj.update(
        {
            "billing_thresholds": None,
            "current_period_end": period[1],
            "current_period_start": period[0],
            "discounts": [],
            "metadata": {},
            "plan": plan_from_price(price_obj),
            "price": dict(price_obj),
            "quantity": quantity,
            "subscription": subscription_id,
            "tax_rates": [],
        }
    )
    return obj


def subscription(store: Store, *, customer_id: str, currency: str, **fields: Any) -> Obj:
    """A subscription without items (the caller adds them)."""
    obj = _common(store, "subscription", "sub_")
    obj.update(
        {
            "application": None,
            "application_fee_percent": None,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
            "billing_cycle_anchor": obj["created"],
            "billing_cycle_anchor_config": None,
            "billing_mode": {"type": "classic"},
            "billing_schedules": [],
            "billing_thresholds": None,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically",
            "currency": currency,
            "customer": customer_id,
            "customer_account": None,
            "days_until_due": None,
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discounts": [],
            "ended_at": None,
            "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
            "items": list_object(f"/v1/subscription_items?subscription={obj['id']}", []),
            "latest_invoice": None,
            "managed_payments": None,
            "metadata": {},
            "next_pending_invoice_item_invoice": None,
            "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {
                "payment_method_options": None,
                "payment_method_types": None,
                "save_default_payment_method": "off",
            },
            "pending_invoice_item_interval": None,
            "pending_setup_intent": None,
            "pending_update": None,
            "schedule": None,
            "start_date": obj["created"],
            "status": "incomplete",
            "test_clock": None,
            "transfer_data": None,
            "trial_end": None,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": None,
        }
    )
    obj.update(fields)
    return obj


def invoice_line(
    store: Store,
    *,
    invoice_id: str,
    item: Obj,
    amount: int,
    quantity: Decimal,
    period: tuple[int, int],
    description: str,
) -> Obj:
    """An invoice line for a subscription item."""
    obj = _common(store, "line_item", "il_")
    del obj["created"]
    price_obj = item["price"]
    obj.update(
        {
            "amount": amount,
            "currency": price_obj["currency"],
            "description": description,
            "discount_amounts": [],
            "discountable": True,
            "discounts": [],
            "invoice": invoice_id,
            "metadata": {},
            "parent": {
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": item["subscription"],
                    "subscription_item": item["id"],
                },
                "type": "subscription_item_details",
            },
            "period": {"end": period[1], "start": period[0]},
            "pretax_credit_amounts": [],
            "pricing": {
                "price_details": {"price": price_obj["id"], "product": price_obj["product"]},
                "type": "price_details",
                "unit_amount_decimal": price_obj["unit_amount_decimal"],
            },
            "quantity": int(quantity),
            "quantity_decimal": decimal_string(quantity),
            "subscription": item["subscription"],
            "subtotal": amount,
            "taxes": [],
        }
    )
    return obj


def invoice(
    store: Store, *, customer_obj: Obj, sub: Obj, billing_reason: str, **fields: Any
) -> Obj:
    """A draft invoice for a subscription (the caller adds lines and totals)."""
    obj = _common(store, "invoice", "in_")
    obj.update(
        {
            "account_country": "US",
            "account_name": ACCOUNT_NAME,
            "account_tax_ids": None,
            "amount_due": 0,
            "amount_overpaid": 0,
            "amount_paid": 0,
            "amount_remaining": 0,
            "amount_shipping": 0,
            "application": None,
            "attempt_count": 0,
            "attempted": False,
            "auto_advance": True,
            "automatic_tax": {
                "disabled_reason": None,
                "enabled": False,
                "liability": None,
                "provider": None,
                "status": None,
            },
            "automatically_finalizes_at": None,
            "billing_reason": billing_reason,
            "collection_method": "charge_automatically",
            "currency": sub["currency"],
            "custom_fields": None,
            "customer": customer_obj["id"],
            "customer_account": None,
            "customer_address": customer_obj["address"],
            "customer_email": customer_obj["email"],
            "customer_name": customer_obj["name"],
            "customer_phone": customer_obj["phone"],
            "customer_shipping": customer_obj["shipping"],
            "customer_tax_exempt": customer_obj["tax_exempt"],
            "customer_tax_ids": [],
            "default_payment_method": None,
            "default_source": None,
            "default_tax_rates": [],
            "description": None,
            "discounts": [],
            "due_date": None,
            "effective_at": None,
            "ending_balance": None,
            "footer": None,
            "from_invoice": None,
            "hosted_invoice_url": None,
            "invoice_pdf": None,
            "issuer": {"type": "self"},
            "last_finalization_error": None,
            "latest_revision": None,
            "lines": list_object(f"/v1/invoices/{obj['id']}/lines", []),
            "metadata": {},
            "next_payment_attempt": None,
            "number": None,
            "on_behalf_of": None,
            "parent": {
                "quote_details": None,
                "subscription_details": {
                    "metadata": dict(sub["metadata"]),
                    "subscription": sub["id"],
                },
                "type": "subscription_details",
            },
            "payment_settings": {
                "default_mandate": None,
                "payment_method_options": None,
                "payment_method_types": None,
            },
            "period_end": obj["created"],
            "period_start": obj["created"],
            "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0,
            "receipt_number": None,
            "rendering": None,
            "shipping_cost": None,
            "shipping_details": None,
            "starting_balance": 0,
            "statement_descriptor": None,
            "status": "draft",
            "status_transitions": {
                "finalized_at": None,
                "marked_uncollectible_at": None,
                "paid_at": None,
                "voided_at": None,
            },
            "subscription": sub["id"],
            "subtotal": 0,
            "subtotal_excluding_tax": 0,
            "test_clock": None,
            "total": 0,
            "total_discount_amounts": [],
            "total_excluding_tax": 0,
            "total_pretax_credit_amounts": [],
            "total_taxes": [],
            "webhooks_delivered_at": None,
        }
    )
    obj.update(fields)
    return obj


def invoice_payment(store: Store, *, invoice_obj: Obj, intent_id: str | None) -> Obj:
    """The link between an invoice and the payment intent that pays it."""
    obj = _common(store, "invoice_payment", "inpay_")
    obj.update(
        {
            "amount_paid": None,
            "amount_requested": invoice_obj["amount_due"],
            "currency": invoice_obj["currency"],
            "invoice": invoice_obj["id"],
            "is_default": True,
            "payment": {"payment_intent": intent_id, "type": "payment_intent"},
            "status": "open",
            "status_transitions": {"canceled_at": None, "paid_at": None},
        }
    )
    return obj


def checkout_session(store: Store, *, mode: str, url_base: str, **fields: Any) -> Obj:
    """An open checkout session whose ``url`` is the emulator's hosted page."""
    obj = _common(store, "checkout.session", "cs_test_", length=58)
    obj.update(
        {
            "adaptive_pricing": None,
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": 0,
            "amount_total": 0,
            "automatic_tax": {
                "enabled": False,
                "liability": None,
                "provider": None,
                "status": None,
            },
            "billing_address_collection": None,
            "cancel_url": None,
            "client_reference_id": None,
            "client_secret": None,
            "collected_information": None,
            "consent": None,
            "consent_collection": None,
            "currency": None,
            "currency_conversion": None,
            "custom_fields": [],
            "custom_text": {
                "after_submit": None,
                "shipping_address": None,
                "submit": None,
                "terms_of_service_acceptance": None,
            },
            "customer": None,
            "customer_account": None,
            "customer_creation": None,
            "customer_details": None,
            "customer_email": None,
            "discounts": [],
            "expires_at": obj["created"] + 86400,
            "integration_identifier": None,
            "invoice": None,
            "invoice_creation": None,
            "locale": None,
            "managed_payments": None,
            "metadata": {},
            "mode": mode,
            "origin_context": None,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "always",
            "payment_method_configuration_details": None,
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "permissions": None,
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "saved_payment_method_options": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": None,
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": f"{url_base}/c/pay/{obj['id']}",
            "wallet_options": None,
        }
    )
    obj.update(fields)
    return obj


def checkout_item(
    store: Store, *, price_obj: Obj, product_name: str, quantity: int, amount: int
) -> Obj:
    """A checkout session's line item."""
    return {
        "id": store.new_id("li_"),
        "object": "item",
        "adjustable_quantity": None,
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": price_obj["currency"],
        "description": product_name,
        "metadata": {},
        "price": dict(price_obj),
        "quantity": quantity,
    }


def portal_configuration(store: Store, *, features: Obj, **fields: Any) -> Obj:
    """A billing portal configuration."""
    obj = _common(store, "billing_portal.configuration", "bpc_")
    obj.update(
        {
            "active": True,
            "application": None,
            "business_profile": {
                "headline": None,
                "privacy_policy_url": None,
                "terms_of_service_url": None,
            },
            "default_return_url": None,
            "features": features,
            "is_default": False,
            "login_page": {"enabled": False, "url": None},
            "metadata": {},
            "name": None,
            "updated": obj["created"],
        }
    )
    obj.update(fields)
    return obj


def portal_session(
    store: Store, *, customer_id: str, configuration_id: str, url_base: str, **fields: Any
) -> Obj:
    """A billing portal session whose ``url`` is the emulator's portal page."""
    obj = _common(store, "billing_portal.session", "bps_")
    obj.update(
        {
            "configuration": configuration_id,
            "customer": customer_id,
            "customer_account": None,
            "flow": None,
            "locale": None,
            "on_behalf_of": None,
            "return_url": None,
            "url": f"{url_base}/p/session/{obj['id']}",
        }
    )
    obj.update(fields)
    return obj


def meter(
    store: Store,
    *,
    display_name: str,
    event_name: str,
    formula: str,
    customer_key: str,
    value_key: str,
) -> Obj:
    """An active billing meter."""
    obj = _common(store, "billing.meter", "mtr_test_", length=32)
    obj.update(
        {
            "customer_mapping": {"event_payload_key": customer_key, "type": "by_id"},
            "default_aggregation": {"formula": formula},
            "display_name": display_name,
            "event_name": event_name,
            "event_time_window": None,
            "status": "active",
            "status_transitions": {"deactivated_at": None},
            "updated": obj["created"],
            "value_settings": {"event_payload_key": value_key},
        }
    )
    return obj


def meter_event(
    *, event_name: str, identifier: str, payload: dict[str, str], timestamp: int, created: int
) -> Obj:
    """An accepted meter event (they have no id: ``identifier`` names them)."""
    return {
        "object": "billing.meter_event",
        "created": created,
        "event_name": event_name,
        "identifier": identifier,
        "livemode": False,
        "payload": payload,
        "timestamp": timestamp,
    }


def meter_event_summary(
    *, summary_id: str, meter_id: str, value: Decimal, start: int, end: int
) -> Obj:
    """An aggregate of a customer's events in one window."""
    number: int | float = int(value) if value == value.to_integral_value() else float(value)
    return {
        "id": summary_id,
        "object": "billing.meter_event_summary",
        "aggregated_value": number,
        "end_time": end,
        "livemode": False,
        "meter": meter_id,
        "start_time": start,
    }


def webhook_endpoint(store: Store, *, url: str, enabled_events: list[str], **fields: Any) -> Obj:
    """A webhook endpoint; its signing secret is private until the create response."""
    obj = _common(store, "webhook_endpoint", "we_")
    obj.update(
        {
            "api_version": None,
            "application": None,
            "description": None,
            "enabled_events": enabled_events,
            "metadata": {},
            "status": "enabled",
            "url": url,
            "_secret": "whsec_" + random_token(32),
        }
    )
    obj.update(fields)
    return obj


def event(
    store: Store,
    *,
    type_: str,
    data_object: Obj,
    previous: Obj | None,
    request: Obj,
    api_version: str,
) -> Obj:
    """An event carrying a snapshot of the object it is about."""
    obj = _common(store, "event", "evt_")
    data: Obj = {"object": data_object}
    if previous is not None:
        data["previous_attributes"] = previous
    obj.update(
        {
            "api_version": api_version,
            "data": data,
            "pending_webhooks": 0,
            "request": request,
            "type": type_,
        }
    )
    return obj
