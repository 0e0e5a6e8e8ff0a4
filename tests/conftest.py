"""Shared fixtures. PostgreSQL and Redis are used when DATABASE_URL / REDIS_URL are set."""

import gc

import pytest
import stripe
from django.conf import settings
from django.db import connection

from mcpbilling.celery import app as celery_app
from mcpbilling.stripe_emulator.testing import running_emulator
from tests.factories import shopper_create


def pytest_configure(config):
    # The SQLite test database lives in the run folder, absent from a fresh clone.
    settings.RUN_DIR.mkdir(exist_ok=True)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


@pytest.fixture(scope="session", autouse=True)
def _finished_threads_disconnected(django_db_setup):
    """Close what finished threads left connected before the test database is dropped.

    The gateway's database work runs on its event loops' executor threads; when a
    served test ends, they end with their connections still open, until the
    garbage collector frees Django's connection wrappers (which hold reference
    cycles). PostgreSQL refuses to drop a database others are connected to.
    """
    yield
    gc.collect()


@pytest.fixture
def on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL (CI does)")


@pytest.fixture
def on_redis():
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: set REDIS_URL (CI does)")


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    from customers.authentication import credentials_forget

    cache.clear()
    credentials_forget()  # and the principals this process keeps
    yield


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def _emulator_server():
    with running_emulator() as emulator:
        yield emulator


@pytest.fixture
def emulator(_emulator_server):
    """The Stripe emulator of this run (real HTTP on a free port), with empty state."""
    _emulator_server.reset()
    yield _emulator_server
    _emulator_server.reset()


@pytest.fixture
def stripe_emulated(emulator, settings, monkeypatch):
    """Stripe is the emulator of this run for our client and dj-stripe's global one,
    with no rate limit to wait on."""
    settings.STRIPE_API_HOST = emulator.url
    settings.STRIPE_RATE_LIMIT_PER_S = 1_000_000
    monkeypatch.setattr(stripe, "api_base", emulator.url)
    monkeypatch.setattr(stripe, "api_key", settings.STRIPE_SECRET_KEY)
    return emulator


@pytest.fixture
def shopper(db, client):
    """A signed-in user whose customer is on a credits plan."""
    return shopper_create(client)
