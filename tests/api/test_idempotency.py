"""Idempotency-Key on POSTs: replay the first answer, refuse another request, per operator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from customers.models import ApiKey, Customer
from mcpbilling.api.idempotency import idempotency_purge
from mcpbilling.api.models import IdempotencyKey
from tests.api.conftest import API, error_of, token_client
from tests.factories import customer

pytestmark = pytest.mark.django_db


def _create(api, key, body):
    return api.post(f"{API}customers/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_the_same_key_and_body_returns_the_first_answer_and_creates_once(api):
    first = _create(api, "k-1", {"email": "once@example.com", "name": "Once"})
    again = _create(api, "k-1", {"name": "Once", "email": "once@example.com"})  # other key order
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Customer.objects.filter(email="once@example.com").count() == 1


def test_the_same_key_with_another_body_is_a_409(api):
    _create(api, "k-2", {"email": "first@example.com"})
    response = _create(api, "k-2", {"email": "second@example.com"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_key_reused"
    assert not Customer.objects.filter(email="second@example.com").exists()


def test_the_same_key_on_another_path_is_a_409(api):
    owner = customer()
    _create(api, "k-3", {"email": "path@example.com"})
    response = api.post(
        f"{API}customers/{owner.pk}/api-keys/",
        {"name": "x"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-3",
    )
    assert response.status_code == 409
    assert not ApiKey.objects.filter(customer=owner).exists()


def test_keys_belong_to_their_operator(api):
    other = token_client(get_user_model().objects.create_superuser("ops2", "o2@example.com", "pw"))
    assert _create(api, "shared", {"email": "a@example.com"}).status_code == 201
    assert _create(other, "shared", {"email": "b@example.com"}).status_code == 201
    assert Customer.objects.filter(email__in=["a@example.com", "b@example.com"]).count() == 2


def test_a_failed_request_keeps_no_key(api):
    customer("taken@example.com")
    refused = _create(api, "k-4", {"email": "taken@example.com"})
    assert refused.status_code == 409 and error_of(refused)["code"] == "customer_exists"
    assert not IdempotencyKey.objects.filter(key="k-4").exists()
    assert _create(api, "k-4", {"email": "free@example.com"}).status_code == 201


def test_an_api_key_secret_is_given_again_on_a_replay_and_stored_encrypted(api):
    owner = customer()
    url = f"{API}customers/{owner.pk}/api-keys/"
    first = api.post(url, {"name": "ci"}, format="json", HTTP_IDEMPOTENCY_KEY="key-create")
    again = api.post(url, {"name": "ci"}, format="json", HTTP_IDEMPOTENCY_KEY="key-create")
    assert again.json()["secret"] == first.json()["secret"]
    assert ApiKey.objects.filter(customer=owner).count() == 1
    stored = bytes(IdempotencyKey.objects.get(key="key-create").response_body)
    assert first.json()["secret"].encode() not in stored


def test_a_bad_key_is_refused(api):
    response = _create(api, "x" * 256, {"email": "long@example.com"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "validation_error"
    assert not Customer.objects.filter(email="long@example.com").exists()


def test_without_credentials_the_key_changes_nothing(client):
    response = client.post(
        f"{API}customers/",
        {"email": "anon@example.com"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="anon",
    )
    assert response.status_code == 401
    assert not IdempotencyKey.objects.exists()


def test_keys_are_kept_a_day_then_purged_and_new_again(api, settings):
    _create(api, "old", {"email": "old@example.com"})
    IdempotencyKey.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(hours=settings.API_IDEMPOTENCY_TTL_H, minutes=1)
    )
    _create(api, "fresh", {"email": "fresh@example.com"})
    # A key past its time is a new key even before the purge runs.
    assert _create(api, "old", {"email": "other@example.com"}).status_code == 201
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency_purge() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]
