"""customers/{id}/api-keys/: issue (the secret once), list, read, revoke, rotate."""

from __future__ import annotations

import pytest

from customers.authentication import authenticate
from customers.models import ApiKey
from mcpbilling.errors import ApplicationError
from tests.api.conftest import API, error_of
from tests.factories import api_key, customer

pytestmark = pytest.mark.django_db


def _keys(owner) -> str:
    return f"{API}customers/{owner.pk}/api-keys/"


def test_a_new_key_shows_its_secret_once_and_it_authenticates(api):
    owner = customer()
    response = api.post(
        _keys(owner),
        {"name": "ci", "scopes": ["calculate"], "daily_budget_decimal": "100"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["secret"].startswith(body["prefix"] + "_")
    assert body["scopes"] == ["calculate"] and body["daily_budget_decimal"] == "100"
    principal = authenticate(token=body["secret"])
    assert principal.customer.pk == owner.pk and principal.api_key.name == "ci"
    listed = api.get(_keys(owner)).json()["results"]
    assert [row["id"] for row in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in api.get(f"{_keys(owner)}{body['id']}/").json()
    assert body["secret"] not in str(ApiKey.objects.filter(pk=body["id"]).values().get())


def test_a_key_needs_a_name_and_a_future_expiry(api):
    owner = customer()
    response = api.post(_keys(owner), {"expires_at": "2001-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"name", "expires_at"}
    response = api.post(_keys(owner), {"name": "x", "scopes": []}, format="json")
    assert response.status_code == 400 and "scopes" in error_of(response)["fields"]
    assert not ApiKey.objects.exists()


def test_revoking_stops_the_key_at_once(api, django_capture_on_commit_callbacks):
    owner = customer()
    issued = api_key(owner)
    authenticate(token=issued.secret)  # cached by the gateway's lookups
    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"{_keys(owner)}{issued.api_key.pk}/")
    assert response.status_code == 200 and response.json()["revoked_at"]
    with pytest.raises(ApplicationError):
        authenticate(token=issued.secret)
    revoked = api.get(_keys(owner), {"revoked": "true"}).json()["results"]
    assert [row["id"] for row in revoked] == [str(issued.api_key.pk)]
    assert api.get(_keys(owner), {"revoked": "false"}).json()["results"] == []


def test_rotating_replaces_the_key(api, django_capture_on_commit_callbacks):
    owner = customer()
    issued = api_key(owner, name="prod", scopes=["calculate"])
    authenticate(token=issued.secret)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{_keys(owner)}{issued.api_key.pk}/rotate/")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "prod" and body["scopes"] == ["calculate"]
    assert authenticate(token=body["secret"]).api_key.pk == int(body["id"])
    with pytest.raises(ApplicationError):
        authenticate(token=issued.secret)
    again = api.post(f"{_keys(owner)}{issued.api_key.pk}/rotate/")
    assert again.status_code == 409 and error_of(again)["code"] == "key_revoked"


def test_a_key_of_another_customer_is_not_found(api):
    owner, other = customer(), customer()
    issued = api_key(other)
    assert api.delete(f"{_keys(owner)}{issued.api_key.pk}/").status_code == 404
    assert api.post(f"{_keys(owner)}{issued.api_key.pk}/rotate/").status_code == 404
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is None


def test_a_deactivated_customer_gets_no_new_key(api):
    owner = customer()
    api.delete(f"{API}customers/{owner.pk}/")
    response = api.post(_keys(owner), {"name": "late"}, format="json")
    assert response.status_code == 409
    assert error_of(response)["code"] == "customer_inactive"


def test_a_view_only_operator_cannot_issue_revoke_or_rotate(viewer):
    owner = customer()
    issued = api_key(owner)
    assert viewer.get(_keys(owner)).status_code == 200
    assert viewer.post(_keys(owner), {"name": "x"}, format="json").status_code == 403
    assert viewer.delete(f"{_keys(owner)}{issued.api_key.pk}/").status_code == 403
    assert viewer.post(f"{_keys(owner)}{issued.api_key.pk}/rotate/").status_code == 403
    assert ApiKey.objects.get().revoked_at is None
