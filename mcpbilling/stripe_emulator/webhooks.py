"""Signed webhook delivery from a background thread, with retries, pausing and reordering."""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from .resources.events import subscribed
from .store import Store, public, random_token

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
MAX_RECORDS = 10_000
ORDERS = ("forward", "reverse", "shuffle")


@dataclass(frozen=True)
class DeliveryConfig:
    """How deliveries are retried: the delay before each retry, and how many attempts in all."""

    retry_delays: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 1800.0)
    max_attempts: int = 6
    timeout_s: float = 10.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if not self.retry_delays:
            return 0.0
        return self.retry_delays[min(attempt, len(self.retry_delays)) - 1]


@dataclass(order=True)
class Task:
    """One delivery of an event to an endpoint, due at a monotonic time."""

    due: float
    seq: int
    event_id: str = field(compare=False)
    endpoint_id: str = field(compare=False)
    attempt: int = field(compare=False, default=1)


def sign(payload: str, secret: str, timestamp: int) -> str:
    """``Stripe-Signature``: ``t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<payload>")>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class Dispatcher:
    """Queues a delivery per subscribed endpoint for each event and POSTs them one at a time."""

    def __init__(self, store: Store, config: DeliveryConfig | None = None) -> None:
        self.store = store
        self.config = config or DeliveryConfig()
        self.records: deque[Obj] = deque(maxlen=MAX_RECORDS)
        self._cond = threading.Condition()
        self._heap: list[Task] = []
        self._ready: deque[Task] = deque()  # flushed while paused: delivered anyway, in order
        self._held: list[Task] = []
        self._paused = False
        self._busy = False
        self._stopping = False
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------
    def start(self) -> None:
        """Start the delivery thread."""
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="stripe-emulator-webhooks", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop delivering; queued deliveries are dropped."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout=self.config.timeout_s + 1)

    def configure(self, config: DeliveryConfig) -> None:
        """Change retry delays, attempts and timeout for deliveries from now on."""
        self.config = config

    def clear(self) -> None:
        """Drop every queued delivery and the attempt records (on reset)."""
        with self._cond:
            self._heap.clear()
            self._ready.clear()
            self._held.clear()
            self.records.clear()

    def pause(self) -> None:
        """Hold new deliveries (and retries) until ``resume`` or ``flush``."""
        with self._cond:
            self._paused = True

    def resume(self) -> int:
        """Deliver what was held, in order, and stop holding; returns how many were held."""
        with self._cond:
            held, self._held = self._held, []
            self._paused = False
            for task in held:
                self._push(task, delay=0)
            self._cond.notify_all()
            return len(held)

    def flush(self, order: str = "forward") -> int:
        """Deliver what is held now, in ``order`` (forward, reverse, shuffle), staying paused."""
        with self._cond:
            held, self._held = self._held, []
            if order == "reverse":
                held.reverse()
            elif order == "shuffle":
                random.shuffle(held)
            self._ready.extend(held)
            self._cond.notify_all()
            return len(held)

    def status(self) -> Obj:
        """Counts of queued, held and recorded deliveries."""
        with self._cond:
            return {
                "paused": self._paused,
                "queued": len(self._heap) + len(self._ready),
                "held": len(self._held),
                "in_flight": self._busy,
                "attempts": len(self.records),
            }

    def attempts(self) -> list[Obj]:
        """The recorded delivery attempts, oldest first."""
        with self._cond:
            return list(self.records)

    def idle(self) -> bool:
        """Whether nothing is queued or in flight (held deliveries do not count)."""
        with self._cond:
            return not (self._heap or self._ready or self._busy)

    # --- queueing --------------------------------------------------------------
    def on_event(self, event: Obj) -> None:
        """Store listener: queue the new event for every endpoint subscribed to its type."""
        endpoints = [e for e in self.store.all("webhook_endpoint") if subscribed(e, event["type"])]
        event["pending_webhooks"] = len(endpoints)
        for endpoint in endpoints:
            self.enqueue(event["id"], endpoint["id"])

    def enqueue(
        self, event_id: str, endpoint_id: str, attempt: int = 1, delay: float = 0.0
    ) -> None:
        """Queue one delivery (held while paused)."""
        with self._cond:
            task = Task(time.monotonic() + delay, next(self._seq), event_id, endpoint_id, attempt)
            if self._paused:
                self._held.append(task)
            else:
                heapq.heappush(self._heap, task)
                self._cond.notify_all()

    def resend(self, event_id: str, endpoint_id: str | None = None) -> int:
        """Deliver an event again to one or all subscribed endpoints; returns how many."""
        event = self.store.get("event", event_id)
        if event is None:
            return 0
        endpoints = [
            e
            for e in self.store.all("webhook_endpoint")
            if (endpoint_id is None and subscribed(e, event["type"])) or e["id"] == endpoint_id
        ]
        for endpoint in endpoints:
            self.enqueue(event_id, endpoint["id"])
        return len(endpoints)

    def _push(self, task: Task, *, delay: float) -> None:
        task.due = time.monotonic() + delay
        task.seq = next(self._seq)
        heapq.heappush(self._heap, task)

    # --- the worker ----------------------------------------------------------------
    def _run(self) -> None:
        with httpx.Client(timeout=self.config.timeout_s) as client:
            while True:
                task = self._next_task()
                if task is None:
                    return
                try:
                    self._deliver(client, task)
                except Exception:
                    logger.exception("Stripe emulator: webhook delivery crashed")
                finally:
                    with self._cond:
                        self._busy = False

    def _next_task(self) -> Task | None:
        with self._cond:
            while not self._stopping:
                if self._ready:
                    self._busy = True
                    return self._ready.popleft()
                wait = None
                if self._heap and not self._paused:
                    wait = self._heap[0].due - time.monotonic()
                    if wait <= 0:
                        self._busy = True
                        return heapq.heappop(self._heap)
                self._cond.wait(timeout=wait)
            return None

    def _deliver(self, client: httpx.Client, task: Task) -> None:
        with self.store.lock:
            event = self.store.get("event", task.event_id)
            endpoint = self.store.get("webhook_endpoint", task.endpoint_id)
            if event is None or endpoint is None:
                return
            payload = json.dumps(public(event), indent=2)
            secret, url = endpoint["_secret"], endpoint["url"]
        started = time.monotonic()
        status, error, body = self._post(client, url, payload, secret)
        ok = status is not None and 200 <= status < 300
        self._record(task, url, status, error, body, ok, time.monotonic() - started)
        if ok:
            self._delivered(event)
        elif task.attempt < self.config.max_attempts:
            with self._cond:
                task.attempt += 1
                self._requeue(task)

    def _requeue(self, task: Task) -> None:
        if self._paused:
            self._held.append(task)
        else:
            self._push(task, delay=self.config.delay(task.attempt - 1))
        self._cond.notify_all()

    def _post(self, client: httpx.Client, url: str, payload: str, secret: str):
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(payload, secret, int(time.time())),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        try:
            response = client.post(
                url, content=payload.encode(), headers=headers, timeout=self.config.timeout_s
            )
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}", None
        return response.status_code, None, response.text[:500]

    def _record(self, task: Task, url: str, status, error, body, ok: bool, seconds: float) -> None:
        record = {
            "id": "whatt_" + random_token(20),
            "event": task.event_id,
            "endpoint": task.endpoint_id,
            "url": url,
            "attempt": task.attempt,
            "status": status,
            "ok": ok,
            "error": error,
            "response_body": body,
            "at": time.time(),
            "duration_ms": round(seconds * 1000, 1),
        }
        with self._cond:
            self.records.append(record)

    def _delivered(self, event: Obj) -> None:
        with self.store.lock:
            event["pending_webhooks"] = max(event["pending_webhooks"] - 1, 0)
            self.store.mark_dirty()
