"""Running the emulator: start-up, persistence across restarts, concurrency, the command."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import stripe
from django.core.management import call_command

from mcpbilling.management.commands import stripe_emulator as command
from mcpbilling.stripe_emulator.testing import running_emulator, start_emulator


def test_starts_fast_on_a_free_port_and_stops_cleanly():
    started = time.monotonic()
    emulator = start_emulator()
    assert time.monotonic() - started < 1.0
    assert emulator.client().v1.customers.list().data == []
    emulator.stop()
    assert not emulator.thread.is_alive()


def test_state_file_keeps_objects_across_restarts(tmp_path):
    state = tmp_path / "stripe.json"
    with running_emulator(state_file=state) as first:
        cus = first.client().v1.customers.create({"email": "kept@example.com"})
        first.client().v1.billing.meters.create(
            {
                "display_name": "Calls",
                "event_name": "calls",
                "default_aggregation": {"formula": "sum"},
            }
        )
        first.client().v1.billing.meter_events.create(
            {
                "event_name": "calls",
                "payload": {"stripe_customer_id": cus.id, "value": "1"},
                "identifier": "once",
            }
        )
    assert state.exists()
    with running_emulator(state_file=state) as second:
        client = second.client()
        assert client.v1.customers.retrieve(cus.id).email == "kept@example.com"
        assert client.v1.accounts.retrieve_current().id == second.store.account_id
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.billing.meter_events.create(
                {
                    "event_name": "calls",
                    "payload": {"stripe_customer_id": cus.id, "value": "1"},
                    "identifier": "once",
                }
            )
        assert caught.value.code == "duplicate_meter_event"


def test_an_unreadable_state_file_is_ignored(tmp_path):
    state = tmp_path / "broken.json"
    state.write_text("{not json")
    with running_emulator(state_file=state) as emulator:
        assert emulator.client().v1.customers.list().data == []


def test_concurrent_creates_get_distinct_ids(emulator):
    def create(n):
        return emulator.client().v1.customers.create({"email": f"c{n}@example.com"}).id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(create, range(40)))
    assert len(set(ids)) == 40
    assert len(list(emulator.client().v1.customers.list({"limit": 100}).auto_paging_iter())) == 40


def test_concurrent_duplicate_identifiers_accept_exactly_one(emulator):
    client = emulator.client()
    cus = client.v1.customers.create({"email": "race@example.com"})
    client.v1.billing.meters.create(
        {"display_name": "Calls", "event_name": "calls", "default_aggregation": {"formula": "sum"}}
    )
    barrier = threading.Barrier(6)

    def report(_):
        barrier.wait()
        try:
            emulator.client().v1.billing.meter_events.create(
                {
                    "event_name": "calls",
                    "payload": {"stripe_customer_id": cus.id, "value": "1"},
                    "identifier": "race",
                }
            )
        except stripe.InvalidRequestError as exc:
            return exc.code
        return "accepted"

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = sorted(pool.map(report, range(6)))
    assert outcomes == ["accepted"] + ["duplicate_meter_event"] * 5
    assert len(emulator.store.meter_events) == 1


def test_management_command_serves_with_its_options(monkeypatch, tmp_path):
    served = {}

    def fake_run(app, **options):
        served.update(options, routes=len(app.routes))

    monkeypatch.setattr(command.uvicorn, "run", fake_run)
    call_command(
        "stripe_emulator",
        "--port",
        "12345",
        "--host",
        "0.0.0.0",
        "--state-file",
        str(tmp_path / "s.json"),
    )
    assert (served["port"], served["host"]) == (12345, "0.0.0.0")
    assert served["routes"] > 80


def test_management_command_defaults_to_the_settings_port(monkeypatch, settings):
    settings.STRIPE_EMULATOR_PORT = 12222
    served = {}
    monkeypatch.setattr(command.uvicorn, "run", lambda app, **options: served.update(options))
    call_command("stripe_emulator")
    assert (served["port"], served["host"]) == (12222, "127.0.0.1")
