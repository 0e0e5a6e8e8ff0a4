"""Accounts through django-allauth: sign-up makes the billing customer, mail, sign-in limits."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model

from billing.models import BillingModel, CreditAccount, OutboxMessage
from customers.models import Customer
from tests.factories import PlanFactory, customer, signed_in_customer

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def free_plan():
    return PlanFactory(
        slug="free", name="Free", billing_model=BillingModel.FREEMIUM, free_calls=100
    )


def _sign_up(client, email="ada@example.com", password=PASSWORD):
    return client.post(
        "/accounts/signup/", {"email": email, "password1": password, "password2": password}
    )


def _link(mail) -> str:
    return re.search(r"http://testserver(/accounts/confirm-email/\S+/)", mail.body).group(1)


def test_sign_up_creates_the_customer_on_the_default_plan_and_mails_a_link(
    client, free_plan, mailoutbox
):
    response = _sign_up(client)

    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    owner = Customer.objects.get(email="ada@example.com")
    assert owner.plan == free_plan and owner.user.email == "ada@example.com"
    assert CreditAccount.objects.filter(customer=owner).exists()
    # The Stripe customer is made later, through the outbox.
    assert OutboxMessage.objects.filter(customer=owner, kind="customer_sync").exists()
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["ada@example.com"]
    assert "/accounts/confirm-email/" in mailoutbox[0].body


def test_sign_in_waits_for_the_email_then_the_link_signs_in_to_the_dashboard(
    client, free_plan, mailoutbox
):
    _sign_up(client)
    client.logout()
    refused = client.post("/accounts/login/", {"login": "ada@example.com", "password": PASSWORD})
    assert refused.status_code == 302 and refused["Location"] == "/accounts/confirm-email/"
    assert client.get("/dashboard/").status_code == 302  # still signed out

    link = _link(mailoutbox[-1])
    assert client.get(link).status_code == 200
    confirmed = client.post(link)
    assert EmailAddress.objects.get(email="ada@example.com").verified
    assert confirmed.status_code == 302

    signed_in = client.post("/accounts/login/", {"login": "ada@example.com", "password": PASSWORD})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200


def test_bad_sign_up_input_shows_errors_beside_the_fields(client, free_plan):
    page = _sign_up(client, email="not-an-email", password="short")

    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(r'id="id_email"[^>]*is-invalid|is-invalid[^>]*id="id_email"', html)
    assert "Enter a valid email address." in html
    assert "invalid-feedback" in html
    assert not Customer.objects.filter(email="not-an-email").exists()


def test_an_operators_customer_with_the_email_becomes_the_new_sign_ins(client, free_plan):
    made = customer("grace@example.com", plan=PlanFactory(slug="credits"))

    _sign_up(client, email="Grace@Example.com")

    made.refresh_from_db()
    assert made.user is not None and made.user.email.lower() == "grace@example.com"
    assert Customer.objects.filter(email="grace@example.com").count() == 1


def test_a_customer_of_another_sign_in_keeps_its_email(client, free_plan):
    other = get_user_model().objects.create_user("o", "owner@example.com", "pw")
    made = customer("owned@example.com")
    made.user = other
    made.save()

    page = _sign_up(client, email="owned@example.com")

    assert page.status_code == 200
    assert "An account with this email exists" in page.content.decode()
    assert get_user_model().objects.filter(email="owned@example.com").count() == 0


def test_sign_out_returns_to_the_site(client):
    signed_in_customer(client, "ada@example.com")

    response = client.post("/accounts/logout/")

    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/dashboard/").status_code == 302


def test_password_reset_mails_a_link_that_sets_a_new_password(client, mailoutbox):
    signed_in_customer(client, "ada@example.com")
    client.logout()

    client.post("/accounts/password/reset/", {"email": "ada@example.com"})
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+/)", mailoutbox[-1].body)
    form = client.get(link.group(1), follow=True)
    changed = client.post(
        form.redirect_chain[-1][0] if form.redirect_chain else link.group(1),
        {"password1": "a-new-password-77", "password2": "a-new-password-77"},
    )

    assert changed.status_code == 302
    assert client.login(username="ada", password="a-new-password-77")


def test_password_change_needs_the_old_password(client):
    signed_in_customer(client, "ada@example.com")

    wrong = client.post(
        "/accounts/password/change/",
        {"oldpassword": "nope", "password1": "n3w-pass-word!", "password2": "n3w-pass-word!"},
    )
    assert wrong.status_code == 200 and "is-invalid" in wrong.content.decode()

    right = client.post(
        "/accounts/password/change/",
        {"oldpassword": "pw-12345-x", "password1": "n3w-pass-word!", "password2": "n3w-pass-word!"},
    )
    assert right.status_code == 302


def test_failed_sign_ins_are_limited_per_email(client):
    signed_in_customer(client, "ada@example.com")
    client.logout()

    for _ in range(5):
        page = client.post("/accounts/login/", {"login": "ada@example.com", "password": "wrong"})
        assert "Too many failed login attempts" not in page.content.decode()
    limited = client.post(
        "/accounts/login/", {"login": "ada@example.com", "password": "pw-12345-x"}
    )

    assert limited.status_code == 200
    assert "Too many failed login attempts" in limited.content.decode()
    assert client.get("/dashboard/").status_code == 302  # even the right password waits


def test_staff_signing_in_without_a_customer_land_in_the_admin(client):
    user = get_user_model().objects.create_user("op", "op@example.com", PASSWORD, is_staff=True)
    EmailAddress.objects.create(user=user, email="op@example.com", verified=True, primary=True)

    response = client.post("/accounts/login/", {"login": "op@example.com", "password": PASSWORD})

    assert response.status_code == 302 and response["Location"] == "/admin/"
