"""/keys/: create a key (its secret shown once), rotate, revoke; errors beside the fields."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from customers.authentication import authenticate
from customers.models import ApiKey
from customers.services import api_key_hash
from mcpbilling.errors import ApplicationError
from tests.factories import api_key, signed_in_customer

pytestmark = pytest.mark.django_db


def _secret(html: str) -> str | None:
    found = re.search(r'value="(mcpb_[0-9a-f]{12}_[\w-]+)"', html)
    return found.group(1) if found else None


@pytest.fixture
def owner(client):
    return signed_in_customer(client, "ada@example.com")


def test_a_new_key_is_shown_once_and_works(client, owner):
    created = client.post(
        "/keys/",
        {
            "name": "laptop",
            "expires_on": (timezone.now() + timedelta(days=30)).date(),
            "daily_budget": "2.50",
        },
    )

    assert created.status_code == 201
    secret = _secret(created.content.decode())
    key = ApiKey.objects.get(customer=owner)
    assert secret and key.secret_hash == api_key_hash(secret) and key.name == "laptop"
    assert key.daily_budget_microcents == 250 * 1_000_000
    assert key.expires_at > timezone.now() + timedelta(days=30)
    assert authenticate(token=secret).customer.pk == owner.pk
    again = client.get("/keys/").content.decode()
    assert _secret(again) is None and secret not in again
    assert key.prefix in again and "$2.50 a day" in again and "ago</time>" in again


def test_bad_key_input_shows_errors_beside_the_fields(client, owner):
    response = client.post(
        "/keys/", {"name": " ", "expires_on": "2000-01-01", "daily_budget": "-3"}
    )

    assert response.status_code == 400
    page = response.content.decode()
    for field, message in [
        ("id_name", "This field is required."),
        ("id_expires_on", "Choose today or a later day."),
        ("id_daily_budget", "greater than or equal to 0.01"),
    ]:
        assert re.search(rf'is-invalid"[^>]*id="{field}"', page), field
        after_field = page[page.index(f'id="{field}"') :]
        assert message in after_field[:600], field
    assert not ApiKey.objects.exists()


def test_rotating_revokes_the_key_and_shows_its_replacement(client, owner):
    old = api_key(owner, name="ci", daily_budget_microcents=5_000_000)

    page = client.post(f"/keys/{old.api_key.pk}/rotate/").content.decode()

    new_secret = _secret(page)
    assert new_secret and new_secret != old.secret
    with pytest.raises(ApplicationError):
        authenticate(token=old.secret)
    assert authenticate(token=new_secret).api_key.name == "ci"
    assert authenticate(token=new_secret).api_key.daily_budget_microcents == 5_000_000


def test_rotating_an_expired_key_gives_its_replacement_the_same_lifetime(client, owner):
    old = api_key(owner, name="temp").api_key
    ApiKey.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=10),
        expires_at=timezone.now() - timedelta(days=3),
    )

    new_secret = _secret(client.post(f"/keys/{old.pk}/rotate/").content.decode())

    replacement = authenticate(token=new_secret).api_key
    assert (
        timedelta(days=6, hours=23) < replacement.expires_at - timezone.now() <= timedelta(days=7)
    )


def test_revoking_stops_the_key_at_once(client, owner):
    issued = api_key(owner, name="old")

    response = client.post(f"/keys/{issued.api_key.pk}/revoke/", follow=True)

    assert "is revoked" in response.content.decode()
    assert ">Revoked<" in response.content.decode()
    with pytest.raises(ApplicationError):
        authenticate(token=issued.secret)


def test_key_actions_need_post(client, owner):
    issued = api_key(owner)

    assert client.get(f"/keys/{issued.api_key.pk}/revoke/").status_code == 405
    assert client.get(f"/keys/{issued.api_key.pk}/rotate/").status_code == 405
