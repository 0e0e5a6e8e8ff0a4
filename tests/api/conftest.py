"""Operators of the REST API: a superuser, a view-only operator, and people who are not staff."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

API = "/api/v1/"


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def operator_user(db):
    return get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-12345-x")


@pytest.fixture
def api(operator_user) -> APIClient:
    """An operator with every permission, by token."""
    return token_client(operator_user)


@pytest.fixture
def viewer(db) -> APIClient:
    """A staff operator who holds only the view permissions: reads, never writes."""
    user = get_user_model().objects.create_user("viewer", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return token_client(user)


@pytest.fixture
def outsider(db) -> APIClient:
    """A signed-up user who is not staff, by token."""
    return token_client(get_user_model().objects.create_user("outsider", password="pw-12345-x"))


def error_of(response) -> dict:
    """The one error shape, checked: returns its ``error`` object."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str), body
    assert set(error) <= {"code", "message", "fields"}, body
    return error
