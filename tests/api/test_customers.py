"""customers/: list with filters, create, read, update, deactivate (never erase)."""

from __future__ import annotations

import pytest

from billing.models import BillingModel, LedgerEntry, OutboxMessage
from billing.services.ledger import credit_grant
from customers.authentication import authenticate
from customers.models import Customer
from mcpbilling.errors import ApplicationError
from tests.api.conftest import API, error_of
from tests.factories import PlanFactory, api_key, customer

pytestmark = pytest.mark.django_db


def test_create_answers_the_customer_with_string_ids_and_utc_times(api):
    PlanFactory(slug="credits", billing_model=BillingModel.CREDITS)
    response = api.post(
        f"{API}customers/",
        {"email": "Ada@Example.com", "name": "Ada", "plan": "credits"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    stored = Customer.objects.get(email="ada@example.com")
    assert body["id"] == str(stored.pk)
    assert body["plan"] == "credits" and body["status"] == "active"
    assert body["created_at"].endswith("Z") and body["daily_budget_decimal"] is None
    # Its Stripe customer is created through the outbox.
    assert OutboxMessage.objects.filter(customer=stored, kind="customer_sync").exists()


def test_create_refuses_a_taken_email_and_a_bad_one(api):
    customer("taken@example.com")
    response = api.post(f"{API}customers/", {"email": "TAKEN@example.com"}, format="json")
    assert response.status_code == 409
    assert error_of(response)["code"] == "customer_exists"
    response = api.post(f"{API}customers/", {"name": "no email"}, format="json")
    assert response.status_code == 400
    assert "email" in error_of(response)["fields"]


def test_list_filters_by_email_plan_status_and_search(api):
    pro = PlanFactory(slug="pro")
    ada = customer("ada@example.com", plan=pro, name="Ada Lovelace")
    customer("bob@example.com", status=Customer.Status.SUSPENDED)

    def emails(**query):
        response = api.get(f"{API}customers/", query)
        assert response.status_code == 200
        return [row["email"] for row in response.json()["results"]]

    assert emails(email="ADA@example.com") == ["ada@example.com"]
    assert emails(plan="pro") == ["ada@example.com"]
    assert emails(status="suspended") == ["bob@example.com"]
    assert emails(q="lovelace") == ["ada@example.com"]
    assert emails(q="example.com") == ["bob@example.com", "ada@example.com"]
    assert api.get(f"{API}customers/{ada.pk}/").json()["name"] == "Ada Lovelace"


def test_update_changes_what_it_names_and_tells_stripe_of_a_new_email(api):
    owner = customer("old@example.com")
    pro = PlanFactory(slug="pro-2")
    response = api.patch(
        f"{API}customers/{owner.pk}/",
        {"email": "new@example.com", "plan": "pro-2", "daily_budget_decimal": "150.5"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    owner.refresh_from_db()
    assert (owner.email, owner.plan, owner.daily_budget_microcents) == (
        "new@example.com",
        pro,
        150_500_000,
    )
    assert response.json()["daily_budget_decimal"] == "150.5"
    assert OutboxMessage.objects.filter(customer=owner, kind="customer_sync").count() == 2


def test_update_refuses_statuses_an_operator_does_not_set(api):
    owner = customer()
    for status in ("past_due", "canceled", "sleeping"):
        response = api.patch(f"{API}customers/{owner.pk}/", {"status": status}, format="json")
        assert response.status_code == 400, status
    assert (
        api.patch(f"{API}customers/{owner.pk}/", {"status": "suspended"}, format="json").json()[
            "status"
        ]
        == "suspended"
    )


def test_suspending_stops_the_customers_keys_at_once(api, django_capture_on_commit_callbacks):
    owner = customer()
    issued = api_key(owner)
    authenticate(token=issued.secret)  # cached by the gateway's lookups
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"{API}customers/{owner.pk}/", {"status": "suspended"}, format="json")
    with pytest.raises(ApplicationError) as refused:
        authenticate(token=issued.secret)
    assert refused.value.code == "account_inactive"


def test_delete_deactivates_and_keeps_the_ledger(api, django_capture_on_commit_callbacks):
    owner = customer()
    credit_grant(customer_id=owner.pk, credits=10, idempotency_key="seed")
    issued = api_key(owner)
    authenticate(token=issued.secret)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"{API}customers/{owner.pk}/")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    owner.refresh_from_db()
    assert owner.status == Customer.Status.CANCELED
    assert owner.api_keys.get().revoked_at is not None
    assert LedgerEntry.objects.filter(account__customer=owner).count() == 1
    with pytest.raises(ApplicationError):
        authenticate(token=issued.secret)
    # Deactivating again is harmless; the customer is still there.
    assert api.delete(f"{API}customers/{owner.pk}/").status_code == 200
    assert api.get(f"{API}customers/{owner.pk}/").status_code == 200


def test_delete_is_refused_while_a_subscription_bills_the_customer(api):
    owner = customer(subscription_status="active")
    response = api.delete(f"{API}customers/{owner.pk}/")
    assert response.status_code == 409
    assert error_of(response)["code"] == "subscription_active"
    owner.refresh_from_db()
    assert owner.status == Customer.Status.ACTIVE
