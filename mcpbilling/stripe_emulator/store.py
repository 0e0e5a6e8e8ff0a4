"""The emulator's state: Stripe objects in memory behind one lock, optionally saved as JSON."""

from __future__ import annotations

import copy
import json
import logging
import os
import secrets
import string
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import no_such

logger = logging.getLogger(__name__)

_ALPHABET = string.ascii_letters + string.digits
STATE_VERSION = 1

# How a resource is named in "No such ..." messages.
LABELS = {
    "billing.meter": "billing meter",
    "billing_portal.configuration": "billing portal configuration",
    "billing_portal.session": "billing portal session",
    "checkout.session": "checkout.session",
    "payment_intent": "payment_intent",
    "payment_method": "PaymentMethod",
    "webhook_endpoint": "webhook endpoint",
}

EventListener = Callable[[dict[str, Any]], None]


def random_token(length: int) -> str:
    """Random letters and digits, as in Stripe's ids and secrets."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def public(value: Any) -> Any:
    """A deep copy without the emulator's private ``_`` keys on objects (dicts with ``object``)."""
    if isinstance(value, dict):
        is_object = "object" in value
        return {
            key: public(item)
            for key, item in value.items()
            if not (is_object and key.startswith("_"))
        }
    if isinstance(value, list):
        return [public(item) for item in value]
    return value


class Store:
    """Every object by kind and id, the accepted meter events, and saved idempotent responses."""

    def __init__(self, state_file: Path | str | None = None) -> None:
        self.lock = threading.RLock()
        self.state_file = Path(state_file) if state_file else None
        self.listeners: list[EventListener] = []
        self._dirty = False
        self._counter = 0
        self._clear()
        if self.state_file and self.state_file.exists():
            self._load(self.state_file)

    def _clear(self) -> None:
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.index: dict[str, str] = {}  # object id -> kind
        self.meter_events: list[dict[str, Any]] = []  # every accepted meter event, oldest first
        self.meter_identifiers: dict[
            str, int
        ] = {}  # identifier -> when Stripe received it (unix s)
        self.rejected_meter_events: list[
            dict[str, Any]
        ] = []  # v2 stream events that failed validation
        self.idempotency: dict[str, dict[str, Any]] = {}  # "<api key>:<key>" -> saved response
        self.in_flight: set[str] = set()
        self.account_id = "acct_" + random_token(16)

    # --- ids, time ---------------------------------------------------------
    def new_id(self, prefix: str, length: int = 24) -> str:
        """A fresh id with Stripe's prefix, unique in this store."""
        while True:
            candidate = prefix + random_token(length)
            if candidate not in self.index:
                return candidate

    def now(self) -> int:
        """Unix seconds."""
        return int(time.time())

    # --- objects -----------------------------------------------------------
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Insert or replace an object under its ``object`` kind; returns it."""
        with self.lock:
            kind = obj["object"]
            self.objects.setdefault(kind, {})[obj["id"]] = obj
            self.index[obj["id"]] = kind
            self._dirty = True
            return obj

    def get(self, kind: str, object_id: str | None) -> dict[str, Any] | None:
        """The object of that kind with that id, or None."""
        if not object_id:
            return None
        return self.objects.get(kind, {}).get(object_id)

    def find(self, object_id: str) -> dict[str, Any] | None:
        """The object with that id, whatever its kind."""
        kind = self.index.get(object_id)
        return self.get(kind, object_id) if kind else None

    def require(self, kind: str, object_id: str | None, *, param: str = "id") -> dict[str, Any]:
        """The object, or Stripe's 404 naming the parameter."""
        obj = self.get(kind, object_id)
        if obj is None or obj.get("deleted"):
            raise no_such(LABELS.get(kind, kind), object_id or "", param=param)
        return obj

    def all(self, kind: str, where: Callable[[dict[str, Any]], bool] | None = None):
        """Objects of a kind, newest first, optionally filtered."""
        with self.lock:
            items = reversed(list(self.objects.get(kind, {}).values()))
            return [
                obj for obj in items if not obj.get("deleted") and (where is None or where(obj))
            ]

    def delete(self, kind: str, object_id: str) -> None:
        """Forget an object."""
        with self.lock:
            self.objects.get(kind, {}).pop(object_id, None)
            self.index.pop(object_id, None)
            self._dirty = True

    def mark_dirty(self) -> None:
        """Note that the state changed and should be saved."""
        self._dirty = True

    def next_number(self) -> int:
        """A process-wide sequence (invoice numbers, receipt numbers)."""
        with self.lock:
            self._counter += 1
            return self._counter

    # --- events ------------------------------------------------------------
    def notify(self, event: dict[str, Any]) -> None:
        """Hand a new event to the listeners (the webhook dispatcher)."""
        for listener in self.listeners:
            listener(event)

    # --- lifecycle ---------------------------------------------------------
    def reset(self) -> None:
        """Forget everything."""
        with self.lock:
            self._clear()
            self._dirty = True

    # --- persistence -------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-ready data."""
        with self.lock:
            return copy.deepcopy(
                {
                    "version": STATE_VERSION,
                    "account_id": self.account_id,
                    "counter": self._counter,
                    "objects": self.objects,
                    "meter_events": self.meter_events,
                }
            )

    def save_if_dirty(self) -> bool:
        """Write the state file when something changed; returns whether it wrote."""
        if not self.state_file or not self._dirty:
            return False
        with self.lock:
            self._dirty = False
            data = self.snapshot()
        tmp = self.state_file.with_suffix(self.state_file.suffix + ".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.state_file)
        return True

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            logger.warning("Stripe emulator: ignoring unreadable state file %s (%s)", path, exc)
            return
        if data.get("version") != STATE_VERSION:
            logger.warning("Stripe emulator: ignoring state file %s of another version", path)
            return
        self.account_id = data["account_id"]
        self._counter = data.get("counter", 0)
        self.objects = data["objects"]
        self.meter_events = data["meter_events"]
        self.meter_identifiers = {e["identifier"]: e["created"] for e in self.meter_events}
        self.index = {oid: kind for kind, objs in self.objects.items() for oid in objs}


class Saver:
    """Writes the state file at most once a period from a background thread, and on stop."""

    def __init__(self, store: Store, period_s: float = 1.0) -> None:
        self.store = store
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start saving in the background (a no-op without a state file)."""
        if not self.store.state_file:
            return
        self._thread = threading.Thread(target=self._run, name="stripe-emulator-saver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop, writing the last changes."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._save()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._save()

    def _save(self) -> None:
        try:
            self.store.save_if_dirty()
        except OSError:
            logger.exception("Stripe emulator: could not write the state file")
