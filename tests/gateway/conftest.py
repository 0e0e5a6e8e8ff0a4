"""Gateway fixtures: the site (Django + /mcp) served by uvicorn on a free port, customers.

The server runs in a thread of this process, so tests using it need
``django_db(transaction=True)``: its threads see only committed rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from billing.models import BillingModel
from billing.services.ledger import credit_grant
from customers.models import Customer
from mcpbilling.gateway.catalog import catalog
from mcpbilling.gateway.ratelimit import memory_counters
from tests.factories import PlanFactory, api_key, customer
from tests.gateway.support import serving, site_app

TEST_TOOLS = "tests.gateway.tools_for_tests"


@pytest.fixture(autouse=True)
def _gateway_state(settings):
    settings.MCP_TOOL_MODULES = [*settings.MCP_TOOL_MODULES, TEST_TOOLS]
    catalog.invalidate()
    memory_counters.clear()
    yield
    catalog.invalidate()


@pytest.fixture
def site(transactional_db, _gateway_state) -> Iterator[str]:
    """The base URL of the running site; its start-up synced the Python tools' rows."""
    with serving(site_app()) as url:
        yield url


@pytest.fixture
def funded() -> Callable[..., tuple[Customer, str]]:
    """``funded(credits, **plan_fields)``: a customer on a credits plan and its API key."""

    def make(credits: int, **plan_fields) -> tuple[Customer, str]:
        owner = customer(plan=PlanFactory(billing_model=BillingModel.CREDITS, **plan_fields))
        if credits:
            credit_grant(customer_id=owner.pk, credits=credits, idempotency_key=f"seed:{owner.pk}")
        return owner, api_key(owner).secret

    return make
