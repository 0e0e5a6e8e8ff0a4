"""Browser tests: Debian's Chromium driven by Playwright against the site served by uvicorn.

Skipped, saying why, where Chromium or Playwright is missing (``.ci/run`` installs
Chromium). Screenshots go to a temporary folder, or to docs/screenshots/ with
``SCREENSHOTS=1`` (``make screenshots``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.browser.support import Shots

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(config, items):
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "browser tests skipped: Playwright is not installed (pip install playwright)"
    if reason is None and not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        reason = f"browser tests skipped: no Chromium at {CHROMIUM} (apt-get install chromium)"
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def chromium():
    """One Chromium per test module.

    Playwright's sync API keeps an event loop marked running in this thread while it
    lives, which Django takes for an async context; the ORM calls of these tests are
    plain synchronous calls, so Django is told to allow them (as pytest-playwright's
    Django users do) for the module's lifetime only.
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def shots(tmp_path) -> Shots:
    folder = (
        Path(settings.BASE_DIR) / "docs" / "screenshots"
        if os.environ.get("SCREENSHOTS") == "1"
        else tmp_path / "screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return Shots(folder)


@pytest.fixture
def site(transactional_db, stripe_emulated, settings) -> Iterator[str]:
    """The whole site (Django and /mcp) in uvicorn, Stripe's webhooks pointed at it, the
    demo catalogue (plans, credit packs, priced tools) in place."""
    from billing.demo import catalogue_seed
    from mcpbilling.gateway.catalog import catalog
    from mcpbilling.gateway.ratelimit import memory_counters
    from tests.gateway.support import serving, site_app
    from webhooks.services import webhook_endpoint_ensure

    catalogue_seed()
    catalog.invalidate()
    memory_counters.clear()
    with serving(site_app()) as url:
        settings.SITE_URL = url
        webhook_endpoint_ensure(site_url=url)
        yield url
    catalog.invalidate()
