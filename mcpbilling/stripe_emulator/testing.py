"""Run the emulator in a background thread for tests, and a tiny webhook receiver to point it at."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import uvicorn

from .app import Runtime, create_app
from .store import Store
from .webhooks import DeliveryConfig

if TYPE_CHECKING:
    import stripe

T = TypeVar("T")
START_TIMEOUT_S = 10.0
# Short retry delays so tests see retries within a second.
FAST_DELIVERY = DeliveryConfig(retry_delays=(0.05, 0.1, 0.2), max_attempts=4, timeout_s=2.0)


def wait_for(predicate: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.02) -> T:
    """Poll until ``predicate()`` is truthy and return it; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class Emulator:
    """A running emulator: its base URL, its state for assertions, and how to stop it."""

    url: str
    runtime: Runtime
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def store(self) -> Store:
        """The emulator's state (hold ``store.lock`` while reading several objects)."""
        return self.runtime.store

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout=START_TIMEOUT_S)

    def reset(self) -> None:
        """Wipe the state, faults and deliveries."""
        self.runtime.reset()

    def client(self, api_key: str = "sk_test_emulator", **options: Any) -> stripe.StripeClient:
        """A ``stripe.StripeClient`` that talks to this emulator."""
        import stripe

        addresses = {"api": self.url, "meter_events": self.url}
        return stripe.StripeClient(api_key, base_addresses=addresses, **options)

    def deliveries(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Webhook delivery attempts so far, oldest first."""
        records = self.runtime.dispatcher.attempts()
        if event_type is None:
            return records
        with self.store.lock:
            return [
                r
                for r in records
                if (self.store.get("event", r["event"]) or {}).get("type") == event_type
            ]

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no webhook delivery is queued or in flight."""
        wait_for(self.runtime.dispatcher.idle, timeout=timeout)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Events so far, oldest first."""
        found = self.store.all("event", lambda e: event_type is None or e["type"] == event_type)
        return list(reversed(found))


def start_emulator(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    state_file: Path | str | None = None,
    delivery: DeliveryConfig | None = FAST_DELIVERY,
) -> Emulator:
    """Start the emulator on ``port`` (0: any free one) in a thread; returns once it listens."""
    app = create_app(state_file=state_file, delivery=delivery)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        loop="asyncio",
        http="h11",
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="stripe-emulator", daemon=True)
    thread.start()
    wait_for(
        lambda: server.started or not thread.is_alive(), timeout=START_TIMEOUT_S, interval=0.005
    )
    if not server.started:
        raise RuntimeError(f"the Stripe emulator did not start on {host}:{port}")
    bound = server.servers[0].sockets[0].getsockname()[1]
    return Emulator(
        url=f"http://{host}:{bound}", runtime=app.state.runtime, server=server, thread=thread
    )


@contextmanager
def running_emulator(port: int = 0, **options: Any) -> Iterator[Emulator]:
    """The emulator for the duration of a ``with`` block."""
    emulator = start_emulator(port, **options)
    try:
        yield emulator
    finally:
        emulator.stop()


# --- a webhook receiver ---------------------------------------------------------------------
@dataclass
class Received:
    """One webhook POST as the receiver got it."""

    body: bytes
    headers: dict[str, str]

    @property
    def event(self) -> dict[str, Any]:
        """The JSON body."""
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """An HTTP server that records POSTs and answers with queued statuses (then 200)."""

    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay_s: float = 0.0  # how long each answer takes
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses."""
        with self.lock:
            self.statuses.extend(statuses)

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """The events received so far, in arrival order."""
        with self.lock:
            received = [r.event for r in self.requests]
        return [e for e in received if event_type is None or e["type"] == event_type]

    def _next_status(self, received: Received) -> int:
        with self.lock:
            self.requests.append(received)
            return self.statuses.pop(0) if self.statuses else 200


@contextmanager
def webhook_receiver(path: str = "/webhook") -> Iterator[WebhookReceiver]:
    """A receiver on a free port for the duration of a ``with`` block."""
    holder: dict[str, WebhookReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            received = Received(self.rfile.read(length), dict(self.headers.items()))
            receiver = holder["receiver"]
            status = receiver._next_status(received)
            time.sleep(receiver.delay_s)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(url=f"http://127.0.0.1:{server.server_address[1]}{path}")
    holder["receiver"] = receiver
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="webhook-receiver",
        daemon=True,
    )
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
