"""Checkout sessions: the hosted page, the helpers, expiry and line items."""

import time

import pytest
import stripe


def _credits_price(client):
    product = client.v1.products.create({"name": "100 credits"})
    return client.v1.prices.create({"product": product.id, "currency": "usd", "unit_amount": 1000})


def _payment_session(client, price, **params):
    return client.v1.checkout.sessions.create(
        {
            "mode": "payment",
            "line_items": [{"price": price.id, "quantity": 2}],
            "success_url": "https://shop.example/done?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://shop.example/cancelled",
            **params,
        }
    )


def test_payment_through_the_hosted_page(client, emulator, http, paying_customer):
    price = _credits_price(client)
    session = _payment_session(
        client,
        price,
        customer=paying_customer.id,
        client_reference_id="order-7",
        metadata={"pack": "100"},
        payment_intent_data={"metadata": {"pack": "100"}},
    )
    assert (session.status, session.payment_status, session.amount_total) == (
        "open",
        "unpaid",
        2000,
    )
    assert session.url == f"{emulator.url}/c/pay/{session.id}"
    assert session.payment_intent is None
    page = http.get(f"/c/pay/{session.id}")
    assert page.status_code == 200
    assert 'name="card_number"' in page.text and "$20.00" in page.text
    done = http.post(
        f"/c/pay/{session.id}", data={"card_number": "4242 4242 4242 4242", "name": "P"}
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"https://shop.example/done?session={session.id}"
    paid = client.v1.checkout.sessions.retrieve(
        session.id, {"expand": ["payment_intent", "line_items"]}
    )
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert paid.payment_intent.status == "succeeded"
    assert paid.payment_intent.metadata.to_dict() == {"pack": "100"}
    assert paid.payment_intent.amount_received == 2000
    assert paid.line_items.data[0].quantity == 2
    completed = emulator.events("checkout.session.completed")
    assert [e["data"]["object"]["client_reference_id"] for e in completed] == ["order-7"]
    assert completed[0]["data"]["object"]["metadata"] == {"pack": "100"}
    assert emulator.events("payment_intent.succeeded")


def test_a_declined_card_shows_the_error_and_completes_nothing(client, emulator, http):
    session = _payment_session(client, _credits_price(client), customer_email="buyer@example.com")
    page = http.post(f"/c/pay/{session.id}", data={"card_number": "4000000000000002"})
    assert page.status_code == 402
    assert "Your card was declined." in page.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert emulator.events("checkout.session.completed") == []
    assert emulator.events("payment_intent.payment_failed")
    assert (
        http.post(f"/c/pay/{session.id}", data={"card_number": "4242424242424242"}).status_code
        == 303
    )
    paid = client.v1.checkout.sessions.retrieve(session.id)
    assert paid.status == "complete"
    assert paid.customer is None  # payment mode makes no customer unless asked
    assert paid.customer_details.email == "buyer@example.com"


def test_subscription_mode_creates_customer_subscription_and_invoice(
    client, emulator, http, monthly_price
):
    session = client.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "line_items": [{"price": monthly_price.id, "quantity": 1}],
            "customer_email": "new@example.com",
            "success_url": "https://shop.example/ok",
            "subscription_data": {"metadata": {"plan": "pro"}},
        }
    )
    http.post(
        f"/c/pay/{session.id}", data={"card_number": "5555555555554444", "email": "new@example.com"}
    )
    done = client.v1.checkout.sessions.retrieve(
        session.id, {"expand": ["subscription", "customer"]}
    )
    assert done.status == "complete"
    assert done.customer.email == "new@example.com"
    assert done.subscription.status == "active"
    assert done.subscription.metadata.to_dict() == {"plan": "pro"}
    assert done.subscription.default_payment_method is not None
    assert client.v1.invoices.retrieve(done.invoice).status == "paid"
    types = [e["type"] for e in emulator.events()]
    assert types.index("customer.subscription.created") < types.index("checkout.session.completed")


def test_helpers_pay_and_decline(client, http):
    session = _payment_session(client, _credits_price(client))
    declined = http.post(f"/_emulator/checkout/{session.id}/decline")
    assert declined.status_code == 402
    assert declined.json()["error"]["decline_code"] == "generic_decline"
    insufficient = http.post(
        f"/_emulator/checkout/{session.id}/pay",
        json={"card": "pm_card_chargeDeclinedInsufficientFunds"},
    )
    assert insufficient.json()["error"]["decline_code"] == "insufficient_funds"
    assert (
        http.post(
            f"/_emulator/checkout/{session.id}/decline", json={"card": "4242424242424242"}
        ).status_code
        == 400
    )
    paid = http.post(f"/_emulator/checkout/{session.id}/pay", json={"email": "h@example.com"})
    assert paid.status_code == 200
    assert paid.json()["status"] == "complete"
    again = http.post(f"/_emulator/checkout/{session.id}/pay")
    assert again.status_code == 400


def test_expire_and_expired_page(client, emulator, http):
    session = _payment_session(client, _credits_price(client))
    expired = client.v1.checkout.sessions.expire(session.id)
    assert (expired.status, expired.url) == ("expired", None)
    assert emulator.events("checkout.session.expired")[0]["data"]["object"]["id"] == session.id
    assert http.get(f"/c/pay/{session.id}").status_code == 410
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id)


def test_expires_at_bounds(client):
    price = _credits_price(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _payment_session(client, price, expires_at=int(time.time()) + 60)
    assert caught.value.param == "expires_at"


def test_mode_and_price_mismatch_is_refused(client, monthly_price):
    with pytest.raises(stripe.InvalidRequestError, match="recurring price"):
        _payment_session(client, monthly_price)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.checkout.sessions.create(
            {"mode": "payment", "line_items": [{"price": _credits_price(client).id}]}
        )
    assert caught.value.param == "line_items[0][quantity]"


def test_price_data_line_items_and_listing(client, paying_customer):
    session = client.v1.checkout.sessions.create(
        {
            "mode": "payment",
            "customer": paying_customer.id,
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 1250,
                        "product_data": {"name": "Top-up"},
                    },
                    "quantity": 3,
                }
            ],
            "success_url": "https://shop.example/ok",
        }
    )
    assert session.amount_total == 3750
    items = client.v1.checkout.sessions.line_items.list(session.id)
    assert (items.data[0].description, items.data[0].amount_total) == ("Top-up", 3750)
    assert items.data[0].price.active is False
    listed = client.v1.checkout.sessions.list({"customer": paying_customer.id, "status": "open"})
    assert [s.id for s in listed.data] == [session.id]


def test_a_card_needing_authentication_does_not_complete_the_page(client, http):
    session = _payment_session(client, _credits_price(client))
    page = http.post(f"/c/pay/{session.id}", data={"card_number": "4000002760003184"})
    assert page.status_code == 402
    assert "requires authentication" in page.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
