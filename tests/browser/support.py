"""Helpers for the browser tests: screenshots at two widths, and a page that fails loudly."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


# Basic accessibility checks of a page: named form fields, buttons and links, images with
# alt text, a language, one main heading. Returns what is wrong.
ACCESSIBILITY_PROBLEMS = """() => {
  const problems = [];
  const labelledBy = (el) => el.getAttribute("aria-labelledby");
  const named = (el) => (el.getAttribute("aria-label") || "").trim() ||
    (labelledBy(el) && document.getElementById(labelledBy(el))) ||
    (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.closest("label");
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!named(el)) problems.push(`field without a label: ${el.outerHTML.slice(0, 80)}`);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!(el.textContent.trim() || el.getAttribute("aria-label"))) {
      problems.push(`unnamed ${el.tagName.toLowerCase()}: ${el.outerHTML.slice(0, 80)}`);
    }
  }
  for (const img of document.querySelectorAll("img")) {
    if (!img.hasAttribute("alt")) problems.push(`image without alt: ${img.src}`);
  }
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  const h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) problems.push(`${h1} <h1> headings`);
  if (document.documentElement.scrollWidth > window.innerWidth + 1) {
    problems.push(`wider than the window: ${document.documentElement.scrollWidth}px`);
  }
  return problems;
}"""


class Shots:
    """Full-page screenshots at desktop and phone widths: NAME-desktop.png, NAME-phone.png."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[str] = []

    def take(self, page, name: str) -> None:
        """Photograph the page at both widths, checking at each its basic accessibility
        and that nothing makes it wider than the screen."""
        size = page.viewport_size
        for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(viewport)
            page.wait_for_timeout(150)  # let the layout settle at the new width
            problems = page.evaluate(ACCESSIBILITY_PROBLEMS)
            assert not problems, (name, label, problems)
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
