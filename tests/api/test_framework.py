"""What every endpoint shares: who may call, the error shape, cursors, the schema and docs."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from rest_framework.exceptions import ValidationError

from customers.apis import CustomerListApi
from tests.api.conftest import API, error_of, token_client
from tests.factories import customer

pytestmark = pytest.mark.django_db


def test_no_credentials_is_401_with_the_token_challenge(client):
    response = client.get(f"{API}customers/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert error_of(response)["code"] == "not_authenticated"


def test_a_wrong_token_is_401(client):
    response = client.get(f"{API}customers/", HTTP_AUTHORIZATION="Token not-a-token")
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_failed"


def test_a_user_who_is_not_staff_is_refused_by_token_and_by_session(outsider, client):
    assert outsider.get(f"{API}customers/").status_code == 403
    assert outsider.post(f"{API}customers/", {"email": "x@example.com"}).status_code == 403
    client.login(username="outsider", password="pw-12345-x")
    response = client.get(f"{API}customers/")
    assert response.status_code == 403
    assert error_of(response)["code"] == "permission_denied"


def test_staff_without_permissions_read_nothing(db):
    staff = get_user_model().objects.create_user("bare", is_staff=True)
    response = token_client(staff).get(f"{API}customers/")
    assert response.status_code == 403
    assert "customers.view_customer" in error_of(response)["message"]


def test_a_view_only_operator_reads_and_cannot_write(viewer):
    owner = customer()
    assert viewer.get(f"{API}customers/").status_code == 200
    assert viewer.get(f"{API}customers/{owner.pk}/").status_code == 200
    for response in (
        viewer.post(f"{API}customers/", {"email": "new@example.com"}, format="json"),
        viewer.patch(f"{API}customers/{owner.pk}/", {"name": "x"}, format="json"),
        viewer.delete(f"{API}customers/{owner.pk}/"),
    ):
        assert response.status_code == 403
        assert error_of(response)["code"] == "permission_denied"
    owner.refresh_from_db()
    assert owner.name == "" and owner.status == "active"


def test_the_admin_session_of_staff_browses_the_api(client, operator_user):
    client.force_login(operator_user)
    response = client.get(f"{API}customers/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"<html" in response.content


def test_session_writes_need_the_csrf_token(operator_user):
    from rest_framework.test import APIClient

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(operator_user)
    response = browser.post(f"{API}customers/", {"email": "csrf@example.com"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in error_of(response)["message"]


def test_an_unknown_path_is_a_404_in_the_error_shape(api):
    response = api.get(f"{API}no-such-thing/")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    response = api.get(f"{API}customers/999999999/")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_a_method_the_endpoint_lacks_is_405(api):
    response = api.put(f"{API}customers/", {}, format="json")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_a_body_that_is_not_json_is_refused(api):
    response = api.post(f"{API}customers/", "email=a@example.com", content_type="text/plain")
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"
    response = api.post(f"{API}customers/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "parse_error"


def test_validation_errors_name_each_field(api):
    response = api.post(f"{API}customers/", {"email": "nope", "plan": "missing"}, format="json")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == {"email", "plan"}
    response = api.post(f"{API}customers/", ["a", "list"], format="json")
    assert response.status_code == 400
    assert "dictionary" in error_of(response)["message"]


def test_a_filter_with_a_bad_value_is_a_validation_error(api):
    response = api.get(f"{API}customers/", {"status": "sleeping", "created_after": "yesterday"})
    assert response.status_code == 400
    assert set(error_of(response)["fields"]) == {"status", "created_after"}


def test_cursor_pages_are_stable_under_inserts(api):
    for n in range(5):
        customer(f"page{n}@example.com")
    first = api.get(f"{API}customers/", {"limit": 2}).json()
    assert set(first) == {"results", "next", "previous"}
    assert [row["email"] for row in first["results"]] == ["page4@example.com", "page3@example.com"]
    assert first["previous"] is None
    customer("inserted@example.com")  # newer than every row seen: never shifts later pages
    second = api.get(first["next"]).json()
    assert [row["email"] for row in second["results"]] == ["page2@example.com", "page1@example.com"]
    third = api.get(second["next"]).json()
    assert [row["email"] for row in third["results"]] == ["page0@example.com"]
    assert third["next"] is None
    back = api.get(third["previous"]).json()
    assert [row["email"] for row in back["results"]] == ["page2@example.com", "page1@example.com"]


def test_a_forged_cursor_is_a_400(api):
    import base64

    for cursor in ("garbage", base64.b64encode(b"p=not-a-number").decode()):
        response = api.get(f"{API}customers/", {"cursor": cursor})
        assert response.status_code == 400
        assert error_of(response)["code"] == "invalid_cursor"


def test_the_page_size_is_capped(api):
    for n in range(3):
        customer(f"cap{n}@example.com")
    assert len(api.get(f"{API}customers/", {"limit": 1}).json()["results"]) == 1
    assert len(api.get(f"{API}customers/", {"limit": 100000}).json()["results"]) == 3


def test_the_schema_is_openapi_with_every_path_and_error_bodies(api):
    response = api.get(f"{API}schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    create = schema["paths"]["/api/v1/customers/"]["post"]
    assert {"201", "400", "401", "403", "409"} <= set(create["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])
    error = schema["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["$ref"].endswith("ErrorDetail")


def test_the_schema_and_docs_are_for_staff_only(outsider, client):
    assert client.get(f"{API}schema/").status_code == 401
    assert outsider.get(f"{API}schema/").status_code == 403


def test_the_docs_are_served_from_the_project_not_a_cdn(api, operator_user, client):
    client.force_login(operator_user)
    for page in ("docs/", "redoc/"):
        html = client.get(f"{API}{page}").content.decode()
        assert "/static/drf_spectacular_sidecar/" in html
        assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


def test_a_write_to_an_unknown_path_is_a_json_404_not_a_csrf_page(operator_user):
    from rest_framework.test import APIClient

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(operator_user)
    for method in ("post", "delete", "patch"):
        response = getattr(browser, method)(f"{API}customers/%C2%84/")
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"


def test_a_nul_in_a_query_or_a_slug_is_refused_not_a_500(api):
    assert api.get(f"{API}customers/", {"q": "x\x00"}).status_code == 400
    field = CustomerListApi.InputSerializer().fields["plan"]
    with pytest.raises(ValidationError):
        field.run_validation("pro\x00")


def test_text_no_column_can_hold_is_a_400_wherever_it_is_in_the_body(api):
    for body in (
        '{"email": "a@example.com", "name": "\\ud800"}',
        '{"email": "a@example.com", "\\u0000": 1}',
    ):
        response = api.post(f"{API}customers/", body, content_type="application/json")
        assert response.status_code == 400, body
        assert error_of(response)["code"] == "parse_error"


def test_any_unknown_path_is_a_json_404_even_with_a_newline(api):
    response = api.post(f"{API}holds/%C2%92%0AR/release/")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
