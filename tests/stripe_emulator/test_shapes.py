"""Every emulated object carries the top-level keys of Stripe's own example of its resource."""

import json
import time
from pathlib import Path

import httpx
import pytest

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "stripe" / "fixtures3.json"
AUTH = {"Authorization": "Bearer sk_test_shapes"}


@pytest.fixture(scope="module")
def stripe_examples():
    if not FIXTURES.exists():
        pytest.skip(f"Stripe's example objects are not here: {FIXTURES} (CI has them)")
    return json.loads(FIXTURES.read_text())["resources"]


class Api:
    """Raw JSON calls, so the key sets are exactly what went over the wire."""

    def __init__(self, url):
        self.http = httpx.Client(base_url=url, headers=AUTH, timeout=5)

    def post(self, path, data=None):
        response = self.http.post(path, data=data or {})
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, path, params=None):
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def delete(self, path):
        return self.http.delete(path).json()


def _subscription_samples(api, customer, samples):
    meter = api.post(
        "/v1/billing/meters",
        {"display_name": "Calls", "event_name": "calls", "default_aggregation[formula]": "sum"},
    )
    product = api.post("/v1/products", {"name": "Pro"})
    price = api.post(
        "/v1/prices",
        {
            "product": product["id"],
            "currency": "usd",
            "unit_amount": 2000,
            "recurring[interval]": "month",
        },
    )
    sub = api.post(
        "/v1/subscriptions", {"customer": customer["id"], "items[0][price]": price["id"]}
    )
    invoice = api.get(f"/v1/invoices/{sub['latest_invoice']}")
    now = int(time.time())
    api.post(
        "/v1/billing/meter_events",
        {
            "event_name": "calls",
            "payload[stripe_customer_id]": customer["id"],
            "payload[value]": "3",
        },
    )
    start = now - now % 3600
    summaries = api.get(
        f"/v1/billing/meters/{meter['id']}/event_summaries",
        {"customer": customer["id"], "start_time": start, "end_time": start + 3600},
    )
    samples.update(
        {
            "product": product,
            "price": price,
            "subscription": sub,
            "subscription_item": api.get(f"/v1/subscription_items/{sub['items']['data'][0]['id']}"),
            "invoice": invoice,
            "line_item": invoice["lines"]["data"][0],
            "invoice_payment": api.get("/v1/invoice_payments", {"invoice": invoice["id"]})["data"][
                0
            ],
            "billing.meter": meter,
            "billing.meter_event": api.post(
                "/v1/billing/meter_events",
                {
                    "event_name": "calls",
                    "payload[stripe_customer_id]": customer["id"],
                    "payload[value]": "1",
                },
            ),
            "billing.meter_event_summary": summaries["data"][0],
            "deleted_product": api.delete(
                f"/v1/products/{api.post('/v1/products', {'name': 'x'})['id']}"
            ),
        }
    )
    return price


def _payment_samples(api, customer, samples):
    intent = api.post(
        "/v1/payment_intents",
        {
            "amount": 1000,
            "currency": "usd",
            "customer": customer["id"],
            "payment_method": customer["invoice_settings"]["default_payment_method"],
            "confirm": "true",
        },
    )
    charge = api.get(f"/v1/charges/{intent['latest_charge']}")
    refund = api.post("/v1/refunds", {"charge": charge["id"], "amount": 100})
    samples.update(
        {
            "payment_method": api.get(f"/v1/payment_methods/{intent['payment_method']}"),
            "payment_intent": intent,
            "charge": charge,
            "refund": refund,
            "balance_transaction": api.get(
                f"/v1/balance_transactions/{charge['balance_transaction']}"
            ),
        }
    )


def _checkout_and_portal_samples(api, customer, price, samples):
    once = api.post(
        "/v1/prices", {"product": price["product"], "currency": "usd", "unit_amount": 500}
    )
    session = api.post(
        "/v1/checkout/sessions",
        {"mode": "payment", "line_items[0][price]": once["id"], "line_items[0][quantity]": 1},
    )
    portal = api.post(
        "/v1/billing_portal/sessions",
        {"customer": customer["id"], "return_url": "https://x.example"},
    )
    samples.update(
        {
            "checkout.session": session,
            "item": api.get(f"/v1/checkout/sessions/{session['id']}/line_items")["data"][0],
            "billing_portal.session": portal,
            "billing_portal.configuration": api.get(
                f"/v1/billing_portal/configurations/{portal['configuration']}"
            ),
        }
    )


@pytest.fixture(scope="module")
def samples(_emulator_server):
    """One emulated object of each kind, as JSON."""
    _emulator_server.reset()
    api = Api(_emulator_server.url)
    customer = api.post(
        "/v1/customers",
        {
            "email": "shape@example.com",
            "payment_method": "pm_card_visa",
            "invoice_settings[default_payment_method]": "pm_card_visa",
        },
    )
    samples = {"account": api.get("/v1/account"), "customer": customer}
    price = _subscription_samples(api, customer, samples)
    _payment_samples(api, customer, samples)
    _checkout_and_portal_samples(api, customer, price, samples)
    endpoint = api.post(
        "/v1/webhook_endpoints", {"url": "https://x.example/hook", "enabled_events[0]": "*"}
    )
    samples["webhook_endpoint"] = api.get(f"/v1/webhook_endpoints/{endpoint['id']}")
    samples["event"] = api.get("/v1/events", {"limit": 1})["data"][0]
    samples["deleted_webhook_endpoint"] = api.delete(f"/v1/webhook_endpoints/{endpoint['id']}")
    samples["deleted_customer"] = api.delete(f"/v1/customers/{customer['id']}")
    yield samples
    _emulator_server.reset()


RESOURCES = [
    "account",
    "customer",
    "deleted_customer",
    "product",
    "deleted_product",
    "price",
    "payment_method",
    "payment_intent",
    "charge",
    "refund",
    "balance_transaction",
    "subscription",
    "subscription_item",
    "invoice",
    "line_item",
    "invoice_payment",
    "checkout.session",
    "item",
    "billing_portal.session",
    "billing_portal.configuration",
    "billing.meter",
    "billing.meter_event",
    "billing.meter_event_summary",
    "webhook_endpoint",
    "deleted_webhook_endpoint",
    "event",
]


@pytest.mark.parametrize("resource", RESOURCES)
def test_top_level_keys_match_stripes_example(stripe_examples, samples, resource):
    example, emulated = stripe_examples[resource], samples[resource]
    assert sorted(emulated) == sorted(example), (
        f"{resource}: missing {sorted(set(example) - set(emulated))}, "
        f"extra {sorted(set(emulated) - set(example))}"
    )
    assert emulated["object"] == example["object"]
    if "livemode" in example:
        assert emulated["livemode"] is False


def test_webhook_endpoint_create_adds_only_the_secret(stripe_examples, _emulator_server):
    api = Api(_emulator_server.url)
    created = api.post(
        "/v1/webhook_endpoints", {"url": "https://x.example/h", "enabled_events[0]": "*"}
    )
    assert set(created) - set(stripe_examples["webhook_endpoint"]) == {"secret"}
    api.delete(f"/v1/webhook_endpoints/{created['id']}")


def test_events_carry_the_library_api_version(samples):
    import stripe

    assert samples["event"]["api_version"] == stripe.api_version
