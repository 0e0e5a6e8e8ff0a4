"""Error pages in the site's layout (DEBUG off), JSON under /api/; every asset served by us."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import path

from mcpbilling.urls import urlpatterns as site_urlpatterns
from tests.factories import signed_in_customer

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("an internal detail that must not leak")


urlpatterns = [path("boom/", _boom), path("api/boom/", _boom), *site_urlpatterns]
handler404 = "mcpbilling.error_pages.not_found"
handler403 = "mcpbilling.error_pages.forbidden"
handler500 = "mcpbilling.error_pages.server_error"


def test_404_is_in_the_layout(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    page = response.content.decode()
    assert "This page does not exist" in page and 'id="main"' in page
    assert "Traceback" not in page


def test_500_is_in_the_layout_without_the_error(settings):
    settings.ROOT_URLCONF = __name__
    response = Client(raise_request_exception=False).get("/boom/")

    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on our side" in page and 'id="main"' in page
    assert "internal detail" not in page and "Traceback" not in page


def test_errors_under_the_api_are_json(client, settings):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"

    settings.ROOT_URLCONF = __name__
    failed = Client(raise_request_exception=False).get("/api/boom/")
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "server_error"


def test_a_form_sent_without_its_csrf_token_gets_the_layouts_page():
    client = Client(enforce_csrf_checks=True)
    signed_in_customer(client, "ada@example.com")

    response = client.post("/keys/", {"name": "x"})

    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/accounts/login/",
        "/accounts/signup/",
        "/dashboard/",
        "/keys/",
        "/usage/",
        "/connect/",
        "/billing/credits/",
        "/billing/plans/",
        "/billing/payment-method/",
        "/billing/invoices/",
        "/no-such-page/",
    ],
)
def test_pages_load_styles_and_scripts_only_from_this_site(client, path):
    signed_in_customer(client, "ada@example.com")
    if path.startswith("/accounts/"):
        client.logout()

    page = client.get(path, follow=True).content.decode()

    assets = re.findall(r'<(?:link|script)[^>]+(?:href|src)="([^"]+)"', page)
    assert any(a.endswith("bootstrap.min.css") for a in assets)
    assert assets and all(a.startswith("/static/") for a in assets), assets
