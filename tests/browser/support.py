"""Helpers for the browser tests: screenshots at two widths, and a page that fails loudly."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


class Shots:
    """Full-page screenshots at desktop and phone widths: NAME-desktop.png, NAME-phone.png."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[str] = []

    def take(self, page, name: str) -> None:
        size = page.viewport_size
        for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(viewport)
            page.wait_for_timeout(150)  # let the layout settle at the new width
            page.screenshot(path=str(self.folder / f"{name}-{label}.png"), full_page=True)
        page.set_viewport_size(size)
        self.taken.append(name)


class Watched:
    """What a page did wrong: responses of 500 or more, and JavaScript errors."""

    def __init__(self, page) -> None:
        self.server_errors: list[str] = []
        self.script_errors: list[str] = []
        page.on(
            "response",
            lambda r: self.server_errors.append(f"{r.status} {r.url}") if r.status >= 500 else None,
        )
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        page.on("console", self._console)

    def _console(self, message) -> None:
        # A page answering 4xx on purpose (a 404 page, a refused form) is logged as
        # a failed load; only other errors count.
        if message.type == "error" and "status of 4" not in message.text:
            self.script_errors.append(message.text)

    def assert_clean(self) -> None:
        assert not self.server_errors, self.server_errors
        assert not self.script_errors, self.script_errors


def in_thread(work: Callable[[], T]) -> T:
    """Run ``work`` in a thread of its own (an MCP client's event loop beside Playwright's)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=120)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
