"""Injected faults: the next N requests matching a method and path fail, or are delayed."""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import asdict, dataclass
from typing import Any

from .errors import invalid


@dataclass
class Fault:
    """A fault for ``times`` requests: a status (Stripe's error for it) and/or a delay.

    ``after`` applies it once the request has run: the change is made, the client sees the fault.
    """

    path: str  # exact, or a glob such as /v1/customers/*
    method: str | None = None
    status: int | None = None
    delay_s: float = 0.0
    times: int = 1
    retry_after: int | None = None
    after: bool = False

    def matches(self, method: str, path: str) -> bool:
        """Whether a request is one this fault is for."""
        return (self.method is None or self.method == method) and fnmatch.fnmatchcase(
            path, self.path
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        """A fault from the helper's JSON body, validated."""
        path = data.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise invalid("path is required and must start with /", param="path")
        status = data.get("status")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise invalid("status must be an HTTP error status (400-599)", param="status")
        delay = float(data.get("delay_s") or 0)
        if status is None and delay <= 0:
            raise invalid("give a status, a delay_s, or both", param="status")
        times = int(data.get("times", 1))
        if times < 1:
            raise invalid("times must be at least 1", param="times")
        method = data.get("method")
        return cls(
            path=path,
            method=method.upper() if isinstance(method, str) else None,
            status=status,
            delay_s=delay,
            times=times,
            retry_after=data.get("retry_after"),
            after=bool(data.get("after", False)),
        )

    def as_json(self) -> dict[str, Any]:
        """The fault as the helper shows it."""
        return asdict(self)


class FaultTable:
    """The armed faults; each matching request uses up one of a fault's ``times``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Arm a fault."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed fault for this request, using up one of its times."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def list(self) -> list[dict[str, Any]]:
        """The armed faults."""
        with self._lock:
            return [fault.as_json() for fault in self._faults]
