"""Subscriptions (periods on items), invoices, renewals and their events."""

import time

import pytest
import stripe


def _types(emulator):
    return [event["type"] for event in emulator.events()]


def _monthly(client, product, unit_amount):
    return client.v1.prices.create(
        {
            "product": product,
            "currency": "usd",
            "unit_amount": unit_amount,
            "recurring": {"interval": "month"},
        }
    )


def _subscribe(client, customer, price, **params):
    return client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}], **params}
    )


def test_subscription_create_pays_the_first_invoice(
    client, emulator, paying_customer, monthly_price
):
    sub = _subscribe(client, paying_customer, monthly_price, metadata={"plan": "pro"})
    assert sub.status == "active"
    item = sub["items"].data[0]
    assert item.price.id == monthly_price.id
    assert item.current_period_end > item.current_period_start >= sub.created
    assert not hasattr(sub, "current_period_end")  # lives on the items in this API version
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.status, invoice.billing_reason) == ("paid", "subscription_create")
    assert (invoice.amount_due, invoice.amount_paid, invoice.amount_remaining) == (2000, 2000, 0)
    assert invoice.parent.subscription_details.subscription == sub.id
    assert invoice.lines.data[0].amount == 2000
    assert invoice.number.endswith("-0001")
    types = _types(emulator)
    for expected in (
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "customer.subscription.created",
    ):
        assert expected in types
    assert types.index("invoice.created") < types.index("invoice.paid")
    created = emulator.events("customer.subscription.created")[0]["data"]["object"]
    assert (created["status"], created["metadata"]) == ("active", {"plan": "pro"})


def test_declined_default_card_leaves_the_subscription_incomplete(client, emulator, monthly_price):
    cus = client.v1.customers.create({"email": "broke@example.com"})
    pm = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", {"customer": cus.id})
    sub = client.v1.subscriptions.create(
        {
            "customer": cus.id,
            "items": [{"price": monthly_price.id}],
            "default_payment_method": pm.id,
        }
    )
    assert sub.status == "incomplete"
    invoice = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (invoice.status, invoice.attempt_count) == ("open", 1)
    assert "invoice.payment_failed" in _types(emulator)
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(invoice.id)
    paid = client.v1.invoices.pay(invoice.id, {"payment_method": "pm_card_visa"})
    assert paid.status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    updated = emulator.events("customer.subscription.updated")[-1]["data"]
    assert updated["previous_attributes"]["status"] == "incomplete"


def test_error_if_incomplete_answers_the_card_error(client, monthly_price):
    cus = client.v1.customers.create({"email": "e@example.com"})
    pm = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", {"customer": cus.id})
    with pytest.raises(stripe.CardError):
        client.v1.subscriptions.create(
            {
                "customer": cus.id,
                "items": [{"price": monthly_price.id}],
                "default_payment_method": pm.id,
                "payment_behavior": "error_if_incomplete",
            }
        )


def test_update_changes_the_price_and_reports_previous_attributes(
    client, emulator, paying_customer, monthly_price
):
    sub = _subscribe(client, paying_customer, monthly_price)
    business = _monthly(client, monthly_price.product, 5000)
    item_id = sub["items"].data[0].id
    updated = client.v1.subscriptions.update(
        sub.id, {"items": [{"id": item_id, "price": business.id}], "metadata": {"seats": "5"}}
    )
    assert updated["items"].data[0].id == item_id
    assert updated["items"].data[0].price.id == business.id
    assert updated.metadata.to_dict() == {"seats": "5"}
    event = emulator.events("customer.subscription.updated")[-1]
    previous = event["data"]["previous_attributes"]
    assert previous["items"]["data"][0]["price"]["id"] == monthly_price.id
    assert previous["metadata"] == {"seats": None}
    assert (
        len(client.v1.invoices.list({"subscription": sub.id}).data) == 1
    )  # no proration by default


def test_always_invoice_bills_the_difference_now(client, paying_customer, monthly_price):
    sub = _subscribe(client, paying_customer, monthly_price)
    dearer = _monthly(client, monthly_price.product, 4000)
    client.v1.subscriptions.update(
        sub.id,
        {
            "items": [{"id": sub["items"].data[0].id, "price": dearer.id}],
            "proration_behavior": "always_invoice",
        },
    )
    invoices = client.v1.invoices.list({"subscription": sub.id}).data
    assert [i.billing_reason for i in invoices] == ["subscription_update", "subscription_create"]
    assert 1990 <= invoices[0].amount_paid <= 2000  # almost the whole period is left


def test_cancel_at_period_end_then_renewal_ends_it(
    client, emulator, http, paying_customer, monthly_price
):
    sub = _subscribe(client, paying_customer, monthly_price)
    scheduled = client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    assert scheduled.cancel_at_period_end is True
    assert scheduled.cancel_at == sub["items"].data[0].current_period_end
    resumed = client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": False})
    assert resumed.cancel_at is None
    client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    result = http.post(f"/_emulator/subscriptions/{sub.id}/advance").json()
    assert result["subscription"]["status"] == "canceled"
    assert emulator.events("customer.subscription.deleted")[0]["data"]["object"]["id"] == sub.id


def test_cancel_now(client, emulator, paying_customer, monthly_price):
    sub = _subscribe(client, paying_customer, monthly_price)
    canceled = client.v1.subscriptions.cancel(
        sub.id, {"cancellation_details": {"comment": "too pricey"}}
    )
    assert (canceled.status, canceled.cancellation_details.comment) == ("canceled", "too pricey")
    assert canceled.ended_at is not None
    assert _types(emulator)[-1] == "customer.subscription.deleted"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.cancel(sub.id)
    assert client.v1.subscriptions.list({"customer": paying_customer.id}).data == []
    assert [s.id for s in client.v1.subscriptions.list({"status": "canceled"}).data] == [sub.id]


def test_renewal_invoice_paid_then_failed_makes_it_past_due(
    client, emulator, http, paying_customer, monthly_price
):
    sub = _subscribe(client, paying_customer, monthly_price)
    renewed = http.post(f"/_emulator/subscriptions/{sub.id}/advance").json()
    assert renewed["invoice"]["billing_reason"] == "subscription_cycle"
    assert renewed["invoice"]["status"] == "paid"
    assert renewed["invoice"]["lines"]["data"][0]["amount"] == 2000
    item = renewed["subscription"]["items"]["data"][0]
    assert item["current_period_start"] >= sub["items"].data[0].current_period_start
    assert renewed["invoice"]["lines"]["data"][0]["period"]["start"] == item["current_period_start"]
    failing = client.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", {"customer": paying_customer.id}
    )
    client.v1.customers.update(
        paying_customer.id, {"invoice_settings": {"default_payment_method": failing.id}}
    )
    failed = http.post(f"/_emulator/subscriptions/{sub.id}/advance").json()
    assert failed["invoice"]["status"] == "open"
    assert failed["invoice"]["next_payment_attempt"] is not None
    assert failed["subscription"]["status"] == "past_due"
    assert (
        emulator.events("invoice.payment_failed")[-1]["data"]["object"]["id"]
        == failed["invoice"]["id"]
    )
    invoices = client.v1.invoices.list({"subscription": sub.id, "status": "open"}).data
    assert [i.id for i in invoices] == [failed["invoice"]["id"]]


def test_metered_usage_is_billed_at_renewal_not_at_creation(client, http, paying_customer):
    meter = client.v1.billing.meters.create(
        {
            "display_name": "Calls",
            "event_name": "tool_call",
            "default_aggregation": {"formula": "sum"},
        }
    )
    product = client.v1.products.create({"name": "Usage"})
    price = client.v1.prices.create(
        {
            "product": product.id,
            "currency": "usd",
            "unit_amount_decimal": "0.5",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    sub = _subscribe(client, paying_customer, price)
    assert sub["items"].data[0].quantity is None
    first = client.v1.invoices.retrieve(sub.latest_invoice)
    assert (first.amount_due, first.status) == (0, "paid")
    for n, value in enumerate((120, 80, 3)):
        client.v1.billing.meter_events.create(
            {
                "event_name": "tool_call",
                "payload": {"stripe_customer_id": paying_customer.id, "value": str(value)},
                "identifier": f"call-{n}",
            }
        )
    renewal = http.post(f"/_emulator/subscriptions/{sub.id}/advance").json()["invoice"]
    assert renewal["amount_due"] == 102  # 203 calls at half a cent, rounded half up
    assert renewal["lines"]["data"][0]["quantity"] == 203
    assert renewal["status"] == "paid"


def test_trial_starts_with_a_zero_invoice_and_converts(
    client, http, paying_customer, monthly_price
):
    sub = _subscribe(client, paying_customer, monthly_price, trial_period_days=14)
    assert sub.status == "trialing"
    assert sub.trial_end - sub.trial_start == 14 * 86400
    assert client.v1.invoices.retrieve(sub.latest_invoice).amount_due == 0
    converted = http.post(f"/_emulator/subscriptions/{sub.id}/advance").json()
    assert converted["subscription"]["status"] == "active"
    assert converted["invoice"]["amount_paid"] == 2000


def test_incomplete_subscription_expires_on_advance(client, http, monthly_price):
    cus = client.v1.customers.create({"email": "never@example.com"})
    sub = client.v1.subscriptions.create(
        {
            "customer": cus.id,
            "items": [{"price": monthly_price.id}],
            "payment_behavior": "default_incomplete",
        }
    )
    assert sub.status == "incomplete"
    http.post(f"/_emulator/subscriptions/{sub.id}/advance")
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete_expired"
    assert client.v1.invoices.retrieve(sub.latest_invoice).status == "void"


def test_invoice_lists_lines_and_items(client, paying_customer, monthly_price):
    sub = _subscribe(client, paying_customer, monthly_price)
    other = client.v1.customers.create({"email": "o@example.com"})
    invoices = client.v1.invoices.list(
        {"customer": paying_customer.id, "expand": ["data.subscription"]}
    )
    assert [i.subscription.id for i in invoices.data] == [sub.id]
    assert client.v1.invoices.list({"customer": other.id}).data == []
    lines = client.v1.invoices.line_items.list(sub.latest_invoice)
    assert lines.data[0].pricing.price_details.price == monthly_price.id
    items = client.v1.subscription_items.list({"subscription": sub.id})
    assert [i.id for i in items.data] == [sub["items"].data[0].id]
    payments = client.v1.invoice_payments.list({"invoice": sub.latest_invoice})
    assert payments.data[0].payment.payment_intent.startswith("pi_")


def test_subscription_filters(client, paying_customer, monthly_price):
    sub = _subscribe(client, paying_customer, monthly_price)
    assert [s.id for s in client.v1.subscriptions.list({"price": monthly_price.id}).data] == [
        sub.id
    ]
    assert client.v1.subscriptions.list({"status": "past_due"}).data == []
    assert client.v1.subscriptions.list({"created": {"gt": int(time.time()) + 60}}).data == []


def test_deleting_a_customer_cancels_its_subscriptions(
    client, emulator, paying_customer, monthly_price
):
    sub = _subscribe(client, paying_customer, monthly_price)
    client.v1.customers.delete(paying_customer.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert _types(emulator)[-2:] == ["customer.subscription.deleted", "customer.deleted"]


def test_a_refused_update_changes_nothing(client, emulator, paying_customer, monthly_price):
    sub = _subscribe(client, paying_customer, monthly_price)
    euros = client.v1.prices.create(
        {
            "product": monthly_price.product,
            "currency": "eur",
            "unit_amount": 900,
            "recurring": {"interval": "month"},
        }
    )
    updates = len(emulator.events("customer.subscription.updated"))
    with pytest.raises(stripe.InvalidRequestError, match="currency"):
        client.v1.subscriptions.update(
            sub.id, {"items": [{"price": euros.id}], "metadata": {"changed": "yes"}}
        )
    after = client.v1.subscriptions.retrieve(sub.id)
    assert [i.price.id for i in after["items"].data] == [monthly_price.id]
    assert after.metadata.to_dict() == {}
    assert len(emulator.events("customer.subscription.updated")) == updates


def test_a_downgrade_with_always_invoice_credits_the_next_invoice(
    client, http, paying_customer, monthly_price
):
    sub = _subscribe(client, paying_customer, monthly_price)
    cheaper = _monthly(client, monthly_price.product, 500)
    client.v1.subscriptions.update(
        sub.id,
        {
            "items": [{"id": sub["items"].data[0].id, "price": cheaper.id}],
            "proration_behavior": "always_invoice",
        },
    )
    credit = client.v1.customers.retrieve(paying_customer.id).balance
    assert -1500 <= credit <= -1490
    downgrade = client.v1.invoices.list({"subscription": sub.id}).data[0]
    assert (downgrade.billing_reason, downgrade.amount_due, downgrade.ending_balance) == (
        "subscription_update",
        0,
        credit,
    )
    renewal = http.post(f"/_emulator/subscriptions/{sub.id}/advance").json()["invoice"]
    assert (renewal["total"], renewal["amount_due"]) == (500, 0)
    assert client.v1.customers.retrieve(paying_customer.id).balance == credit + 500
