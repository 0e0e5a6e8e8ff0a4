"""Customers, products and prices through the real stripe library."""

from decimal import Decimal

import pytest
import stripe


def _types(emulator):
    return [event["type"] for event in emulator.events()]


def test_customer_crud_and_events(client, emulator):
    cus = client.v1.customers.create(
        {"email": "ada@example.com", "name": "Ada", "metadata": {"tier": "gold"}}
    )
    assert cus.id.startswith("cus_")
    assert (cus.object, cus.livemode, cus.invoice_settings.default_payment_method) == (
        "customer",
        False,
        None,
    )
    updated = client.v1.customers.update(cus.id, {"name": "Ada L.", "phone": "+15550100"})
    assert (updated.name, updated.phone, updated.email) == (
        "Ada L.",
        "+15550100",
        "ada@example.com",
    )
    deleted = client.v1.customers.delete(cus.id)
    assert deleted.deleted is True
    again = client.v1.customers.retrieve(cus.id)
    assert again.deleted is True
    assert client.v1.customers.list().data == []
    assert _types(emulator) == ["customer.created", "customer.updated", "customer.deleted"]
    update_event = emulator.events("customer.updated")[0]
    assert update_event["data"]["previous_attributes"] == {"name": "Ada", "phone": None}


def test_customer_list_filters_by_email(client):
    client.v1.customers.create({"email": "one@example.com"})
    two = client.v1.customers.create({"email": "two@example.com"})
    assert [c.id for c in client.v1.customers.list({"email": "two@example.com"}).data] == [two.id]


def test_customer_search(client):
    client.v1.customers.create({"email": "x@example.com", "metadata": {"account": "42"}})
    wanted = client.v1.customers.create({"email": "y@example.com", "metadata": {"account": "43"}})
    found = client.v1.customers.search({"query": "metadata['account']:'43'"})
    assert [c.id for c in found.data] == [wanted.id]


def test_default_payment_method_must_be_attached_to_the_customer(client):
    cus = client.v1.customers.create({"email": "d@example.com"})
    loose = client.v1.payment_methods.create({"type": "card", "card": {"token": "tok_visa"}})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.update(
            cus.id, {"invoice_settings": {"default_payment_method": loose.id}}
        )
    assert caught.value.param == "invoice_settings[default_payment_method]"


def test_customer_created_with_a_payment_method_alias(client):
    cus = client.v1.customers.create(
        {
            "email": "p@example.com",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    default = cus.invoice_settings.default_payment_method
    assert default.startswith("pm_") and default != "pm_card_visa"
    assert client.v1.payment_methods.retrieve(default).customer == cus.id


def test_product_with_custom_id_and_default_price(client):
    product = client.v1.products.create(
        {
            "id": "prod_credits_100",
            "name": "100 credits",
            "default_price_data": {"currency": "usd", "unit_amount": 1000},
        }
    )
    assert product.id == "prod_credits_100"
    price = client.v1.prices.retrieve(product.default_price)
    assert (price.type, price.unit_amount, price.product) == ("one_time", 1000, product.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.products.create({"id": "prod_credits_100", "name": "again"})
    assert caught.value.code == "resource_already_exists"


def test_product_update_list_and_delete_rules(client):
    kept = client.v1.products.create({"name": "Kept"})
    gone = client.v1.products.create({"name": "Gone"})
    client.v1.prices.create({"product": kept.id, "currency": "usd", "unit_amount": 500})
    client.v1.products.update(kept.id, {"active": False, "description": "retired"})
    assert [p.id for p in client.v1.products.list({"active": False}).data] == [kept.id]
    with pytest.raises(stripe.InvalidRequestError, match="prices"):
        client.v1.products.delete(kept.id)
    assert client.v1.products.delete(gone.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.retrieve(gone.id)


def test_prices_one_time_recurring_and_decimal(client):
    product = client.v1.products.create({"name": "API calls"})
    monthly = client.v1.prices.create(
        {
            "product": product.id,
            "currency": "USD",
            "unit_amount": 2000,
            "recurring": {"interval": "month"},
            "nickname": "Pro monthly",
        }
    )
    assert monthly.currency == "usd"
    assert monthly.recurring.to_dict() == {
        "interval": "month",
        "interval_count": 1,
        "meter": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }
    sub_cent = client.v1.prices.create(
        {"product": product.id, "currency": "usd", "unit_amount_decimal": "0.25"}
    )
    assert (sub_cent.unit_amount, sub_cent.unit_amount_decimal) == (None, Decimal("0.25"))


def test_metered_price_needs_a_meter(client):
    product = client.v1.products.create({"name": "Metered"})
    recurring = {"interval": "month", "usage_type": "metered"}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create(
            {"product": product.id, "currency": "usd", "unit_amount": 1, "recurring": recurring}
        )
    assert caught.value.param == "recurring[meter]"
    meter = client.v1.billing.meters.create(
        {"display_name": "Calls", "event_name": "calls", "default_aggregation": {"formula": "sum"}}
    )
    price = client.v1.prices.create(
        {
            "product": product.id,
            "currency": "usd",
            "unit_amount_decimal": "0.5",
            "recurring": {**recurring, "meter": meter.id},
        }
    )
    assert price.recurring.meter == meter.id


def test_price_filters_and_lookup_keys(client):
    product = client.v1.products.create({"name": "Plans"})
    other = client.v1.products.create({"name": "Other"})
    base = {"currency": "usd", "unit_amount": 100}
    monthly = client.v1.prices.create(
        {**base, "product": product.id, "recurring": {"interval": "month"}, "lookup_key": "m"}
    )
    yearly = client.v1.prices.create(
        {**base, "product": product.id, "recurring": {"interval": "year"}, "lookup_key": "y"}
    )
    once = client.v1.prices.create({**base, "product": other.id})
    client.v1.prices.update(yearly.id, {"active": False})

    def ids(params):
        return {p.id for p in client.v1.prices.list(params).data}

    assert ids({"lookup_keys": ["m", "y"]}) == {monthly.id, yearly.id}
    assert ids({"product": product.id, "active": True}) == {monthly.id}
    assert ids({"type": "one_time"}) == {once.id}
    assert ids({"recurring": {"interval": "year"}}) == {yearly.id}


def test_lookup_key_is_unique_unless_transferred(client):
    product = client.v1.products.create({"name": "Plan"})
    base = {"product": product.id, "currency": "usd", "unit_amount": 100, "lookup_key": "current"}
    old = client.v1.prices.create(base)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create(base)
    assert caught.value.param == "lookup_key"
    new = client.v1.prices.create({**base, "transfer_lookup_key": True})
    assert client.v1.prices.retrieve(old.id).lookup_key is None
    assert [p.id for p in client.v1.prices.list({"lookup_keys": ["current"]}).data] == [new.id]


def test_inactive_price_cannot_be_sold(client, paying_customer, monthly_price):
    client.v1.prices.update(monthly_price.id, {"active": False})
    with pytest.raises(stripe.InvalidRequestError, match="inactive"):
        client.v1.subscriptions.create(
            {"customer": paying_customer.id, "items": [{"price": monthly_price.id}]}
        )


def test_a_failed_create_leaves_nothing_behind(client, emulator):
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.create(
            {"name": "Half", "default_price_data": {"currency": "dollars", "unit_amount": 100}}
        )
    with pytest.raises(stripe.CardError):
        client.v1.customers.create(
            {"email": "x@example.com", "payment_method": "pm_card_chargeDeclined"}
        )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.create({"currency": "usd", "product_data": {"name": "Orphan"}})
    assert client.v1.products.list().data == []
    assert client.v1.customers.list().data == []
    assert emulator.events() == []
