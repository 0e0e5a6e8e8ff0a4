"""Billing meters, meter events (v1 and the v2 stream) and event summaries."""

import time

import pytest
import stripe


@pytest.fixture
def meter(client):
    """A sum meter on ``tool_call`` events."""
    return client.v1.billing.meters.create(
        {
            "display_name": "Tool calls",
            "event_name": "tool_call",
            "default_aggregation": {"formula": "sum"},
        }
    )


@pytest.fixture
def customer(client):
    """A customer to meter."""
    return client.v1.customers.create({"email": "metered@example.com"})


def _event(client, customer, value, **params):
    payload = {"stripe_customer_id": customer.id, "value": str(value)}
    return client.v1.billing.meter_events.create(
        {"event_name": "tool_call", "payload": payload, **params}
    )


def _hour_start():
    now = int(time.time())
    return now - now % 3600


def test_meter_crud_and_status(client, emulator, meter):
    assert meter.id.startswith("mtr_")
    assert meter.customer_mapping.to_dict() == {
        "event_payload_key": "stripe_customer_id",
        "type": "by_id",
    }
    assert meter.value_settings.event_payload_key == "value"
    renamed = client.v1.billing.meters.update(meter.id, {"display_name": "Calls"})
    assert renamed.display_name == "Calls"
    inactive = client.v1.billing.meters.deactivate(meter.id)
    assert (inactive.status, bool(inactive.status_transitions.deactivated_at)) == ("inactive", True)
    assert [m.id for m in client.v1.billing.meters.list({"status": "inactive"}).data] == [meter.id]
    assert client.v1.billing.meters.reactivate(meter.id).status == "active"
    types = [e["type"] for e in emulator.events()]
    assert types == [
        "billing.meter.created",
        "billing.meter.updated",
        "billing.meter.deactivated",
        "billing.meter.reactivated",
    ]


def test_meter_event_is_accepted_and_kept(client, http, meter, customer):
    event = _event(client, customer, 25, identifier="call-1")
    assert (event.object, event.identifier, event.payload["value"]) == (
        "billing.meter_event",
        "call-1",
        "25",
    )
    kept = http.get("/_emulator/meter_events", params={"customer": customer.id}).json()["data"]
    assert [e["identifier"] for e in kept] == ["call-1"]


def test_duplicate_identifier_is_refused(client, meter, customer):
    _event(client, customer, 1, identifier="dup")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _event(client, customer, 1, identifier="dup")
    assert caught.value.http_status == 400
    assert caught.value.code == "duplicate_meter_event"
    assert caught.value.param == "identifier"
    assert "An event already exists with identifier dup" in str(caught.value)


def test_a_retry_with_the_same_idempotency_key_is_not_a_duplicate(client, meter, customer):
    options = {"idempotency_key": "report-same"}
    payload = {"stripe_customer_id": customer.id, "value": "1"}
    params = {"event_name": "tool_call", "payload": payload, "identifier": "same"}
    first = client.v1.billing.meter_events.create(params, options)
    second = client.v1.billing.meter_events.create(params, options)
    assert first.identifier == second.identifier == "same"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"event_name": "unknown_event"}, "no_meter"),
        ({"payload": {"value": "1"}}, "meter_event_no_customer_defined"),
        (
            {"payload": {"stripe_customer_id": "cus_nobody", "value": "1"}},
            "meter_event_customer_not_found",
        ),
        ({"payload_value": "abc"}, "meter_event_invalid_value"),
        # Seconds from when the test runs (parameters are made when the suite is collected).
        ({"timestamp_from_now": -36 * 86400}, "timestamp_too_far_in_past"),
        ({"timestamp_from_now": 600}, "timestamp_in_future"),
    ],
)
def test_invalid_events_are_refused_with_stripes_codes(client, meter, customer, params, code):
    request = {
        "event_name": "tool_call",
        "payload": {"stripe_customer_id": customer.id, "value": params.pop("payload_value", "1")},
        **params,
    }
    if "timestamp_from_now" in request:
        request["timestamp"] = int(time.time()) + request.pop("timestamp_from_now")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.billing.meter_events.create(request)
    assert (caught.value.http_status, caught.value.code) == (400, code)


def test_events_for_an_inactive_meter_are_refused(client, meter, customer):
    client.v1.billing.meters.deactivate(meter.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _event(client, customer, 1)
    assert caught.value.code == "archived_meter"


def test_summary_sums_events_in_the_half_open_window(client, meter, customer):
    start = _hour_start() - 3600
    other = client.v1.customers.create({"email": "other@example.com"})
    _event(client, customer, 10, timestamp=start)
    _event(client, customer, 5, timestamp=start + 3599)
    _event(client, customer, 7, timestamp=start + 3600)
    _event(client, other, 1000, timestamp=start + 10)
    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id, {"customer": customer.id, "start_time": start, "end_time": start + 3600}
    )
    assert [(s.aggregated_value, s.start_time, s.end_time) for s in summaries.data] == [
        (15, start, start + 3600)
    ]
    assert summaries.data[0].id.startswith("mtrusg_")


def test_summaries_per_hour_newest_first(client, meter, customer):
    start = _hour_start() - 3 * 3600
    _event(client, customer, 1, timestamp=start + 60)
    _event(client, customer, 2, timestamp=start + 7200 + 60)
    _event(client, customer, 3, timestamp=start + 7200 + 120)
    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id,
        {
            "customer": customer.id,
            "start_time": start,
            "end_time": start + 3 * 3600,
            "value_grouping_window": "hour",
        },
    )
    assert [(s.start_time - start, s.aggregated_value) for s in summaries.data] == [
        (7200, 5),
        (0, 1),
    ]


@pytest.mark.parametrize(("formula", "expected"), [("count", 3), ("last", 4)])
def test_count_and_last_formulas(client, customer, formula, expected):
    client.v1.billing.meters.create(
        {
            "display_name": formula,
            "event_name": "tool_call",
            "default_aggregation": {"formula": formula},
        }
    )
    meter = client.v1.billing.meters.list().data[0]
    start = _hour_start() - 3600
    for offset, value in ((30, 9), (10, 2), (50, 4)):
        _event(client, customer, value, timestamp=start + offset)
    summary = client.v1.billing.meters.event_summaries.list(
        meter.id, {"customer": customer.id, "start_time": start, "end_time": start + 3600}
    ).data[0]
    assert summary.aggregated_value == expected


def test_summary_times_must_be_minute_aligned(client, meter, customer):
    start = _hour_start()
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.billing.meters.event_summaries.list(
            meter.id, {"customer": customer.id, "start_time": start + 1, "end_time": start + 3600}
        )
    assert caught.value.param == "start_time"


def test_custom_payload_keys(client, customer):
    meter = client.v1.billing.meters.create(
        {
            "display_name": "Tokens",
            "event_name": "tokens",
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"event_payload_key": "account", "type": "by_id"},
            "value_settings": {"event_payload_key": "tokens"},
        }
    )
    start = _hour_start()
    client.v1.billing.meter_events.create(
        {"event_name": "tokens", "payload": {"account": customer.id, "tokens": "1500"}}
    )
    summary = client.v1.billing.meters.event_summaries.list(
        meter.id, {"customer": customer.id, "start_time": start, "end_time": start + 3600}
    ).data[0]
    assert summary.aggregated_value == 1500


def test_v2_session_and_stream(emulator, client, http, meter, customer):
    session = client.v2.billing.meter_event_session.create()
    assert session.authentication_token.startswith("mes_tok_")
    streamer = emulator.client(session.authentication_token)
    events = [
        {
            "event_name": "tool_call",
            "identifier": f"v2-{n}",
            "payload": {"stripe_customer_id": customer.id, "value": "2"},
        }
        for n in range(3)
    ]
    events.append({"event_name": "tool_call", "payload": {"value": "2"}})  # no customer: dropped
    streamer.v2.billing.meter_event_stream.create({"events": events})
    kept = http.get("/_emulator/meter_events").json()
    assert sorted(e["identifier"] for e in kept["data"]) == ["v2-0", "v2-1", "v2-2"]
    assert kept["rejected"][0]["error"]["code"] == "meter_event_no_customer_defined"
    with pytest.raises(stripe.TemporarySessionExpiredError):
        emulator.client("mes_tok_unknown").v2.billing.meter_event_stream.create(
            {"events": events[:1]}
        )


def test_v2_synchronous_meter_event(client, meter, customer):
    event = client.v2.billing.meter_events.create(
        {
            "event_name": "tool_call",
            "identifier": "sync-1",
            "payload": {"stripe_customer_id": customer.id, "value": "4"},
        }
    )
    assert event.identifier == "sync-1"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v2.billing.meter_events.create(
            {
                "event_name": "tool_call",
                "identifier": "sync-1",
                "payload": {"stripe_customer_id": customer.id, "value": "4"},
            }
        )
    assert caught.value.code == "duplicate_meter_event"
