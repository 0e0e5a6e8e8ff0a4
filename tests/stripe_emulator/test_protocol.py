"""Stripe's protocol: auth, errors, form encoding, idempotency, pagination, expand, faults."""

import time

import httpx
import pytest
import stripe

from mcpbilling.stripe_emulator import forms

# --- form encoding ---------------------------------------------------------------------


def test_decode_builds_nested_hashes_and_indexed_arrays():
    decoded = forms.decode(
        "items[0][price]=price_a&items[0][quantity]=2&items[1][price]=price_b"
        "&metadata[plan]=pro&expand[]=customer&expand[]=latest_invoice&email="
    )
    assert decoded == {
        "items": [{"price": "price_a", "quantity": "2"}, {"price": "price_b"}],
        "metadata": {"plan": "pro"},
        "expand": ["customer", "latest_invoice"],
        "email": "",
    }


def test_decode_orders_indexes_numerically():
    decoded = forms.decode("a[10]=k&a[2]=c&a[0]=a")
    assert decoded == {"a": ["a", "c", "k"]}


def test_decode_refuses_a_key_that_is_both_value_and_hash():
    with pytest.raises(Exception, match="hash"):
        forms.decode("a=1&a[b]=2")


# --- auth and errors ---------------------------------------------------------------------


def test_missing_key_is_a_401_in_stripes_shape(http):
    response = http.get("/v1/customers")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "API key" in error["message"]
    assert response.headers["Request-Id"].startswith("req_")


def test_live_and_malformed_keys_are_refused(emulator):
    for key in ("sk_live_abc", "pk_test_abc", "nonsense"):
        with pytest.raises(stripe.AuthenticationError):
            emulator.client(key).v1.customers.list()


def test_restricted_test_keys_and_basic_auth_are_accepted(emulator, http):
    assert emulator.client("rk_test_123").v1.customers.list().data == []
    response = http.get("/v1/customers", auth=("sk_test_basic", ""))
    assert response.status_code == 200


def test_unknown_object_is_404_resource_missing(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.retrieve("cus_missing")
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"
    assert caught.value.param == "id"
    assert caught.value.json_body["error"]["doc_url"].endswith("/resource-missing")


def test_unknown_route_is_404_unrecognized_url(http):
    response = http.get("/v1/nope", headers={"Authorization": "Bearer sk_test_x"})
    assert response.status_code == 404
    assert "Unrecognized request URL (GET: /v1/nope)" in response.json()["error"]["message"]


def test_missing_required_param_names_it(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.create({"currency": "usd", "unit_amount": 100})
    assert caught.value.code == "parameter_missing"
    assert caught.value.param == "product_data"


# --- idempotency ---------------------------------------------------------------------------


def test_same_key_same_params_replays_the_stored_response(client, http):
    options = {"idempotency_key": "create-alice"}
    first = client.v1.customers.create({"email": "alice@example.com"}, options)
    second = client.v1.customers.create({"email": "alice@example.com"}, options)
    assert second.id == first.id
    assert client.v1.customers.list().data == [first]
    raw = http.post(
        "/v1/customers",
        data={"email": "alice@example.com"},
        headers={"Authorization": "Bearer sk_test_emulator", "Idempotency-Key": "create-alice"},
    )
    assert raw.headers["Idempotent-Replayed"] == "true"
    assert raw.json()["id"] == first.id


def test_same_key_other_params_is_an_idempotency_error(client):
    client.v1.customers.create({"email": "a@example.com"}, {"idempotency_key": "k1"})
    with pytest.raises(stripe.IdempotencyError) as caught:
        client.v1.customers.create({"email": "b@example.com"}, {"idempotency_key": "k1"})
    assert caught.value.http_status == 400
    assert caught.value.json_body["error"]["type"] == "idempotency_error"


def test_keys_are_scoped_to_the_api_key(emulator):
    a = emulator.client("sk_test_a").v1.customers.create(
        {"email": "a@x.com"}, {"idempotency_key": "k"}
    )
    b = emulator.client("sk_test_b").v1.customers.create(
        {"email": "a@x.com"}, {"idempotency_key": "k"}
    )
    assert a.id != b.id


def test_a_card_error_is_replayed_too(client):
    params = {
        "amount": 1000,
        "currency": "usd",
        "payment_method": "pm_card_chargeDeclined",
        "confirm": True,
    }
    with pytest.raises(stripe.CardError) as first:
        client.v1.payment_intents.create(params, {"idempotency_key": "decline-once"})
    with pytest.raises(stripe.CardError) as second:
        client.v1.payment_intents.create(params, {"idempotency_key": "decline-once"})
    assert first.value.error.payment_intent.id == second.value.error.payment_intent.id
    assert len(client.v1.payment_intents.list().data) == 1


# --- lists ------------------------------------------------------------------------------------


def test_pagination_walks_newest_first_without_gaps(client):
    created = [client.v1.customers.create({"email": f"c{i}@example.com"}).id for i in range(25)]
    page = client.v1.customers.list({"limit": 10})
    assert page.has_more is True
    assert page.url == "/v1/customers"
    assert [c.id for c in page.data] == created[::-1][:10]
    walked = [c.id for c in client.v1.customers.list({"limit": 7}).auto_paging_iter()]
    assert walked == created[::-1]
    before = client.v1.customers.list({"ending_before": created[5], "limit": 3})
    assert [c.id for c in before.data] == [created[8], created[7], created[6]]
    assert before.has_more is True


def test_limit_out_of_range_is_refused(client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.list({"limit": 101})
    assert caught.value.param == "limit"


def test_created_filter(client):
    old = client.v1.customers.create({"email": "old@example.com"})
    found = client.v1.customers.list({"created": {"gte": old.created}}).data
    assert old.id in [c.id for c in found]
    assert client.v1.customers.list({"created": {"gt": old.created + 5}}).data == []


# --- expand and metadata ---------------------------------------------------------------------


def test_expand_replaces_ids_and_reaches_into_lists(client, paying_customer, monthly_price):
    sub = client.v1.subscriptions.create(
        {
            "customer": paying_customer.id,
            "items": [{"price": monthly_price.id}],
            "expand": ["customer", "latest_invoice.payments"],
        }
    )
    assert sub.customer.email == "payer@example.com"
    assert sub.latest_invoice.object == "invoice"
    assert sub.latest_invoice.payments.data[0].status == "paid"
    listed = client.v1.subscriptions.list({"expand": ["data.customer"]})
    assert listed.data[0].customer.id == paying_customer.id


def test_expanding_something_that_is_not_expandable_is_refused(client):
    cus = client.v1.customers.create({"email": "e@example.com"})
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        client.v1.customers.retrieve(cus.id, {"expand": ["balance"]})


def test_metadata_merges_and_an_empty_value_deletes_a_key(client):
    cus = client.v1.customers.create({"metadata": {"a": "1", "b": "2"}})
    updated = client.v1.customers.update(cus.id, {"metadata": {"b": "", "c": "3"}})
    assert updated.metadata.to_dict() == {"a": "1", "c": "3"}
    cleared = client.v1.customers.update(cus.id, {"metadata": ""})
    assert cleared.metadata.to_dict() == {}


# --- faults ----------------------------------------------------------------------------------


def test_injected_429_has_stripes_shape_and_retry_after(client, http):
    http.post("/_emulator/faults", json={"path": "/v1/customers", "status": 429, "retry_after": 7})
    with pytest.raises(stripe.RateLimitError) as caught:
        client.v1.customers.create({"email": "r@example.com"})
    assert caught.value.http_status == 429
    assert caught.value.headers["Retry-After"] == "7"
    assert caught.value.json_body["error"]["code"] == "rate_limit"
    assert client.v1.customers.create({"email": "r@example.com"}).email == "r@example.com"


def test_injected_500_is_retried_by_the_library_with_the_same_key(emulator, http):
    http.post(
        "/_emulator/faults",
        json={"path": "/v1/customers", "method": "POST", "status": 500, "times": 2},
    )
    retrying = emulator.client(max_network_retries=2)
    cus = retrying.v1.customers.create({"email": "retry@example.com"})
    assert cus.email == "retry@example.com"
    assert len(emulator.client().v1.customers.list().data) == 1


def test_fault_matches_method_and_glob(client, http):
    http.post("/_emulator/faults", json={"path": "/v1/customers/*", "method": "GET", "status": 500})
    cus = client.v1.customers.create({"email": "g@example.com"})
    with pytest.raises(stripe.APIError):
        client.v1.customers.retrieve(cus.id)
    assert client.v1.customers.retrieve(cus.id).id == cus.id


def test_injected_delay_times_out_a_short_timeout_client(emulator, http):
    http.post("/_emulator/faults", json={"path": "/v1/customers", "delay_s": 1.0})
    impatient = emulator.client(
        http_client=stripe.RequestsClient(timeout=0.3), max_network_retries=0
    )
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.customers.list()
    assert time.monotonic() - started < 0.9
    assert impatient.v1.customers.list().data == []


def test_fault_after_the_request_ran_keeps_the_change(client, http):
    http.post(
        "/_emulator/faults",
        json={"path": "/v1/customers", "method": "POST", "status": 500, "after": True},
    )
    with pytest.raises(stripe.APIError):
        client.v1.customers.create({"email": "lost-response@example.com"})
    assert [c.email for c in client.v1.customers.list().data] == ["lost-response@example.com"]


def test_faults_can_be_listed_and_cleared(http):
    http.post("/_emulator/faults", json={"path": "/v1/customers", "status": 503, "times": 3})
    assert http.get("/_emulator/faults").json()["data"][0]["times"] == 3
    http.delete("/_emulator/faults")
    assert http.get("/_emulator/faults").json()["data"] == []


def test_a_bad_fault_is_refused(http):
    response = http.post("/_emulator/faults", json={"path": "v1/customers", "status": 500})
    assert response.status_code == 400


def test_health_and_reset(http, client):
    client.v1.customers.create({"email": "x@example.com"})
    assert http.get("/_emulator/health").json()["status"] == "ok"
    assert http.post("/_emulator/reset").json() == {"reset": True}
    assert client.v1.customers.list().data == []


def test_account_is_what_dj_stripe_reads_first(client, emulator):
    account = client.v1.accounts.retrieve_current()
    assert account.id.startswith("acct_")
    assert account.charges_enabled is True
    same = httpx.get(f"{emulator.url}/v1/accounts/{account.id}", auth=("sk_test_x", ""))
    assert same.json()["id"] == account.id
