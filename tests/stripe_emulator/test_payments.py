"""Payment methods, payment intents, charges and refunds with Stripe's test cards."""

import httpx
import pytest
import stripe


def _types(emulator):
    return [event["type"] for event in emulator.events()]


def _charge_default_card(client, customer, amount, **params):
    """Pay ``amount`` cents with the customer's default card."""
    return client.v1.payment_intents.create(
        {
            "amount": amount,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": customer.invoice_settings.default_payment_method,
            "confirm": True,
            **params,
        }
    )


def test_off_session_payment_succeeds_with_a_charge(client, emulator, paying_customer):
    intent = _charge_default_card(
        client, paying_customer, 1500, off_session=True, metadata={"topup": "t_1"}
    )
    assert (intent.status, intent.amount_received) == ("succeeded", 1500)
    charge = client.v1.charges.retrieve(intent.latest_charge, {"expand": ["balance_transaction"]})
    assert (charge.paid, charge.captured, charge.amount_captured) == (True, True, 1500)
    assert charge.payment_method_details.card.last4 == "4242"
    assert charge.metadata.to_dict() == {"topup": "t_1"}
    assert charge.balance_transaction.net == 1500 - charge.balance_transaction.fee
    assert _types(emulator)[-3:] == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]


@pytest.mark.parametrize(
    ("card", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
def test_declined_card_is_a_402_with_the_failed_intent(client, emulator, card, decline_code):
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_intents.create(
            {"amount": 2000, "currency": "usd", "payment_method": card, "confirm": True}
        )
    error = caught.value
    assert (error.http_status, error.code) == (402, "card_declined")
    assert error.error.decline_code == decline_code
    failed = error.error.payment_intent
    assert failed.status == "requires_payment_method"
    assert failed.last_payment_error.decline_code == decline_code
    assert client.v1.payment_intents.retrieve(failed.id).status == "requires_payment_method"
    charge = client.v1.charges.retrieve(failed.latest_charge)
    assert (charge.status, charge.failure_code) == ("failed", "card_declined")
    assert _types(emulator)[-2:] == ["charge.failed", "payment_intent.payment_failed"]


def test_declining_cards_cannot_be_attached_but_charge_customer_fail_can(client):
    cus = client.v1.customers.create({"email": "c@example.com"})
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_methods.attach("pm_card_chargeDeclined", {"customer": cus.id})
    assert caught.value.error.decline_code == "generic_decline"
    pm = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", {"customer": cus.id})
    assert pm.customer == cus.id
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.create(
            {
                "amount": 900,
                "currency": "usd",
                "customer": cus.id,
                "payment_method": pm.id,
                "confirm": True,
                "off_session": True,
            }
        )


def test_authentication_required_card(client, paying_customer):
    pm = client.v1.payment_methods.attach(
        "pm_card_authenticationRequired", {"customer": paying_customer.id}
    )
    base = {
        "amount": 1000,
        "currency": "usd",
        "customer": paying_customer.id,
        "payment_method": pm.id,
    }
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_intents.create({**base, "confirm": True, "off_session": True})
    assert caught.value.code == "authentication_required"
    on_session = client.v1.payment_intents.create({**base, "confirm": True})
    assert on_session.status == "requires_action"


def test_payment_methods_from_tokens_numbers_and_lists(client, emulator):
    cus = client.v1.customers.create({"email": "l@example.com"})
    by_token = client.v1.payment_methods.create(
        {"type": "card", "card": {"token": "tok_mastercard"}}
    )
    by_number = client.v1.payment_methods.create(
        {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034}}
    )
    assert (by_token.card.brand, by_number.card.last4) == ("mastercard", "4242")
    for pm in (by_token, by_number):
        client.v1.payment_methods.attach(pm.id, {"customer": cus.id})
    listed = client.v1.payment_methods.list({"customer": cus.id, "type": "card"})
    assert {pm.id for pm in listed.data} == {by_token.id, by_number.id}
    nested = client.v1.customers.payment_methods.list(cus.id)
    assert {pm.id for pm in nested.data} == {by_token.id, by_number.id}
    client.v1.customers.update(
        cus.id, {"invoice_settings": {"default_payment_method": by_token.id}}
    )
    client.v1.payment_methods.detach(by_token.id)
    assert client.v1.customers.retrieve(cus.id).invoice_settings.default_payment_method is None
    assert [pm.id for pm in client.v1.customers.payment_methods.list(cus.id).data] == [by_number.id]
    assert _types(emulator).count("payment_method.attached") == 2
    assert "payment_method.detached" in _types(emulator)


def test_non_test_card_numbers_are_refused(client):
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_methods.create({"type": "card", "card": {"number": "4242424242424241"}})
    assert caught.value.code == "incorrect_number"


def test_intent_lifecycle_confirm_capture_cancel(client, paying_customer):
    pm_id = paying_customer.invoice_settings.default_payment_method
    draft = client.v1.payment_intents.create(
        {"amount": 700, "currency": "usd", "customer": paying_customer.id}
    )
    assert draft.status == "requires_payment_method"
    confirmed = client.v1.payment_intents.confirm(draft.id, {"payment_method": pm_id})
    assert confirmed.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.cancel(draft.id)
    assert caught.value.code == "payment_intent_unexpected_state"
    held = client.v1.payment_intents.create(
        {
            "amount": 900,
            "currency": "usd",
            "customer": paying_customer.id,
            "payment_method": pm_id,
            "capture_method": "manual",
            "confirm": True,
        }
    )
    assert (held.status, held.amount_capturable) == ("requires_capture", 900)
    captured = client.v1.payment_intents.capture(held.id, {"amount_to_capture": 600})
    assert (captured.status, captured.amount_received) == ("succeeded", 600)
    dropped = client.v1.payment_intents.create({"amount": 800, "currency": "usd"})
    canceled = client.v1.payment_intents.cancel(dropped.id, {"cancellation_reason": "abandoned"})
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")


def test_minimum_amount(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create({"amount": 49, "currency": "usd"})
    assert caught.value.code == "amount_too_small"


def test_intent_list_by_customer_and_expand(client, paying_customer):
    intent = _charge_default_card(client, paying_customer, 1000)
    client.v1.payment_intents.create({"amount": 1000, "currency": "usd"})
    listed = client.v1.payment_intents.list(
        {"customer": paying_customer.id, "expand": ["data.latest_charge", "data.payment_method"]}
    )
    assert [i.id for i in listed.data] == [intent.id]
    assert listed.data[0].latest_charge.object == "charge"
    assert listed.data[0].payment_method.card.brand == "visa"


def test_partial_and_full_refunds_update_the_charge(client, emulator, paying_customer):
    intent = _charge_default_card(client, paying_customer, 1000)
    partial = client.v1.refunds.create(
        {"payment_intent": intent.id, "amount": 400, "reason": "requested_by_customer"}
    )
    assert (partial.status, partial.amount, partial.charge) == (
        "succeeded",
        400,
        intent.latest_charge,
    )
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.amount_refunded, charge.refunded) == (400, False)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create({"charge": charge.id, "amount": 700})
    assert caught.value.code == "amount_too_large"
    rest = client.v1.refunds.create({"charge": charge.id})
    assert rest.amount == 600
    charge = client.v1.charges.retrieve(charge.id)
    assert (charge.amount_refunded, charge.refunded) == (1000, True)
    assert [r.id for r in charge.refunds.data] == [rest.id, partial.id]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create({"charge": charge.id})
    assert caught.value.code == "charge_already_refunded"
    refunded = emulator.events("charge.refunded")
    assert len(refunded) == 2
    assert refunded[-1]["data"]["object"]["id"] == charge.id
    assert refunded[-1]["data"]["previous_attributes"]["amount_refunded"] == 400
    assert len(emulator.events("refund.created")) == 2
    assert {r.id for r in client.v1.refunds.list({"payment_intent": intent.id}).data} == {
        partial.id,
        rest.id,
    }


def test_refund_of_a_failed_intent_is_refused(client):
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_intents.create(
            {
                "amount": 1000,
                "currency": "usd",
                "payment_method": "pm_card_chargeDeclined",
                "confirm": True,
            }
        )
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.create({"payment_intent": caught.value.error.payment_intent.id})
    assert refused.value.param == "payment_intent"


def test_a_captured_charge_has_a_receipt_page(client, emulator, paying_customer):
    intent = _charge_default_card(client, paying_customer, 1250, description="Starter credits")
    charge = client.v1.charges.retrieve(intent.latest_charge)

    assert charge.receipt_url == f"{emulator.url}/r/{charge.id}"
    page = httpx.get(charge.receipt_url)
    assert page.status_code == 200
    assert "Starter credits" in page.text and "$12.50" in page.text
    assert charge.receipt_number in page.text
    assert httpx.get(f"{emulator.url}/r/ch_missing").status_code == 404
