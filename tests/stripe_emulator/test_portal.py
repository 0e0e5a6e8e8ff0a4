"""The billing portal: sessions, configurations, and the page's actions."""

import pytest
import stripe


@pytest.fixture
def subscribed(client, paying_customer, monthly_price):
    """The paying customer on the $20/month plan."""
    return client.v1.subscriptions.create(
        {"customer": paying_customer.id, "items": [{"price": monthly_price.id}]}
    )


def _portal(client, customer, **params):
    return client.v1.billing_portal.sessions.create(
        {"customer": customer.id, "return_url": "https://app.example/account", **params}
    )


def _act(http, session, **form):
    return http.post(f"/p/session/{session.id}", data=form)


def test_session_points_at_the_portal_page(client, emulator, http, paying_customer, subscribed):
    session = _portal(client, paying_customer)
    assert session.url == f"{emulator.url}/p/session/{session.id}"
    assert session.configuration.startswith("bpc_")
    page = http.get(f"/p/session/{session.id}")
    assert page.status_code == 200
    assert "payer@example.com" in page.text
    assert "Pro" in page.text and "$20.00" in page.text
    assert "Visa •••• 4242" in page.text
    assert 'href="https://app.example/account"' in page.text
    assert emulator.events("billing_portal.session.created")


def test_return_url_is_required_without_a_default(client, paying_customer):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.billing_portal.sessions.create({"customer": paying_customer.id})
    assert caught.value.param == "return_url"


def test_cancel_at_period_end_and_renew(client, emulator, http, paying_customer, subscribed):
    session = _portal(client, paying_customer)
    done = _act(http, session, action="cancel", subscription=subscribed.id)
    assert done.status_code == 303
    assert client.v1.subscriptions.retrieve(subscribed.id).cancel_at_period_end is True
    page = http.get(done.headers["location"])
    assert "will be cancelled at the end of the period" in page.text and "Cancels on" in page.text
    event = emulator.events("customer.subscription.updated")[-1]["data"]
    assert event["previous_attributes"]["cancel_at_period_end"] is False
    _act(http, session, action="renew", subscription=subscribed.id)
    assert client.v1.subscriptions.retrieve(subscribed.id).cancel_at_period_end is False


def test_cancel_now_needs_a_configuration_that_allows_it(
    client, emulator, http, paying_customer, subscribed
):
    default = _portal(client, paying_customer)
    refused = _act(http, default, action="cancel_now", subscription=subscribed.id)
    assert refused.status_code == 400
    config = client.v1.billing_portal.configurations.create(
        {"features": {"subscription_cancel": {"enabled": True, "mode": "immediately"}}}
    )
    session = _portal(client, paying_customer, configuration=config.id)
    assert "Cancel now" in http.get(f"/p/session/{session.id}").text
    assert _act(http, session, action="cancel_now", subscription=subscribed.id).status_code == 303
    assert client.v1.subscriptions.retrieve(subscribed.id).status == "canceled"
    assert emulator.events("customer.subscription.deleted")


def test_change_plan_to_a_configured_price(
    client, emulator, http, paying_customer, subscribed, monthly_price
):
    business = client.v1.products.create({"name": "Business"})
    business_price = client.v1.prices.create(
        {
            "product": business.id,
            "currency": "usd",
            "unit_amount": 9000,
            "recurring": {"interval": "month"},
        }
    )
    config = client.v1.billing_portal.configurations.create(
        {
            "features": {
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price"],
                    "products": [{"product": business.id, "prices": [business_price.id]}],
                }
            }
        }
    )
    session = _portal(client, paying_customer, configuration=config.id)
    assert business_price.id in http.get(f"/p/session/{session.id}").text
    _act(http, session, action="change_plan", subscription=subscribed.id, price=business_price.id)
    changed = client.v1.subscriptions.retrieve(subscribed.id)
    assert changed["items"].data[0].price.id == business_price.id
    previous = emulator.events("customer.subscription.updated")[-1]["data"]["previous_attributes"]
    assert previous["items"]["data"][0]["price"]["id"] == monthly_price.id
    refused = _act(
        http, session, action="change_plan", subscription=subscribed.id, price=monthly_price.id
    )
    assert refused.status_code == 400


def test_default_configuration_offers_the_same_products_prices(
    client, http, paying_customer, subscribed, monthly_price
):
    yearly = client.v1.prices.create(
        {
            "product": monthly_price.product,
            "currency": "usd",
            "unit_amount": 20000,
            "recurring": {"interval": "year"},
        }
    )
    session = _portal(client, paying_customer)
    page = http.get(f"/p/session/{session.id}").text
    assert f'value="{yearly.id}"' in page
    _act(http, session, action="change_plan", subscription=subscribed.id, price=yearly.id)
    assert client.v1.subscriptions.retrieve(subscribed.id)["items"].data[0].price.id == yearly.id


def test_update_card_then_pay_an_open_invoice(client, emulator, http, paying_customer, subscribed):
    failing = client.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", {"customer": paying_customer.id}
    )
    client.v1.customers.update(
        paying_customer.id, {"invoice_settings": {"default_payment_method": failing.id}}
    )
    renewal = http.post(f"/_emulator/subscriptions/{subscribed.id}/advance").json()["invoice"]
    assert renewal["status"] == "open"
    session = _portal(client, paying_customer)
    declined = _act(http, session, action="update_card", card_number="4000000000000002")
    assert declined.status_code == 402
    assert "Your card was declined." in declined.text
    assert (
        _act(http, session, action="update_card", card_number="5555555555554444").status_code == 303
    )
    customer = client.v1.customers.retrieve(
        paying_customer.id, {"expand": ["invoice_settings.default_payment_method"]}
    )
    assert customer.invoice_settings.default_payment_method.card.brand == "mastercard"
    assert _act(http, session, action="pay_invoice", invoice=renewal["id"]).status_code == 303
    assert client.v1.invoices.retrieve(renewal["id"]).status == "paid"
    assert client.v1.subscriptions.retrieve(subscribed.id).status == "active"
    assert emulator.events("payment_method.attached")


def test_configurations_crud(client):
    config = client.v1.billing_portal.configurations.create(
        {"business_profile": {"headline": "Acme"}, "default_return_url": "https://app.example/"}
    )
    assert (config.is_default, config.business_profile.headline) == (False, "Acme")
    updated = client.v1.billing_portal.configurations.update(
        config.id, {"features": {"invoice_history": {"enabled": False}}}
    )
    assert updated.features.invoice_history.enabled is False
    assert [c.id for c in client.v1.billing_portal.configurations.list().data] == [config.id]
