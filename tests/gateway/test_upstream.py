"""Upstream MCP servers proxied through /mcp and billed: Streamable HTTP and stdio."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from billing.models import Tool, UpstreamServer, UsageRecord
from billing.services.pricing import tool_price_set
from mcpbilling.gateway.catalog import catalog
from mcpbilling.gateway.upstream import env_expanded, upstream_tools_sync
from tests.gateway.support import balance, call, call_error, list_tools, serving
from tests.gateway.upstreams import upstream_http_app

pytestmark = pytest.mark.django_db(transaction=True)

UPSTREAM_SCRIPT = Path(__file__).with_name("upstreams.py")


def priced(*names: str, credits: int = 2) -> None:
    for name in names:
        tool_price_set(
            tool=Tool.objects.get(name=name),
            unit_amount_microcents=credits * 500_000,
            credits=credits,
        )
    catalog.invalidate()


@pytest.fixture
def http_upstream(monkeypatch):
    monkeypatch.setenv("UPSTREAM_TOKEN", "s3cret")
    with serving(upstream_http_app()) as url:
        server = UpstreamServer.objects.create(
            name="text",
            transport=UpstreamServer.Transport.HTTP,
            url=f"{url}/mcp",
            headers={"X-Upstream-Token": "${UPSTREAM_TOKEN}"},
            tool_prefix="text_",
            exclude=["hidden"],
        )
        anyio.run(upstream_tools_sync, server)
        yield server


@pytest.fixture
def stdio_upstream(monkeypatch):
    monkeypatch.setenv("UPSTREAM_GREETING", "Bonjour")
    server = UpstreamServer.objects.create(
        name="local",
        transport=UpstreamServer.Transport.STDIO,
        command=sys.executable,
        args=[str(UPSTREAM_SCRIPT)],
        env={"GREETING": "${UPSTREAM_GREETING}"},
        tool_prefix="local_",
        include=["greet", "pid", "broken"],
    )
    anyio.run(upstream_tools_sync, server)
    return server


class TestHttpUpstream:
    def test_sync_creates_unpriced_rows_that_are_not_offered_yet(self, site, funded, http_upstream):
        _, key = funded(10)
        row = Tool.objects.get(name="text_shout")
        assert row.source == Tool.Source.UPSTREAM and row.upstream == http_upstream
        assert row.upstream_name == "shout"
        assert row.input_schema["properties"]["text"]["type"] == "string"
        assert "text_shout" not in list_tools(site, key)

    def test_a_priced_upstream_tool_is_listed_called_and_billed(self, site, funded, http_upstream):
        owner, key = funded(10)
        priced("text_shout")
        assert list_tools(site, key)["text_shout"].meta["mcpbilling/price"]["credits"] == 2
        result = call(site, key, "text_shout", {"text": "hello"})
        assert result.content[0].text == "HELLO"
        assert result.meta["mcpbilling/receipt"]["credits"] == 2
        assert balance(owner) == 8
        assert UsageRecord.objects.get().tool.name == "text_shout"

    def test_headers_carry_values_from_the_environment(self, site, funded, http_upstream):
        _, key = funded(10)
        priced("text_token")
        assert call(site, key, "text_token").content[0].text == "s3cret"

    def test_excluded_tools_are_not_offered_even_priced(self, site, funded, http_upstream):
        _, key = funded(10)
        priced("text_hidden")
        assert "text_hidden" not in list_tools(site, key)

    def test_a_failing_upstream_tool_charges_nothing(self, site, funded, http_upstream):
        owner, key = funded(10)
        priced("text_broken")
        result = call(site, key, "text_broken")
        assert result.is_error and "the upstream tool failed" in result.content[0].text
        assert balance(owner) == 10

    def test_a_jsonrpc_error_from_upstream_reaches_the_client_uncharged(
        self, site, funded, http_upstream
    ):
        owner, key = funded(10)
        priced("text_rejecting")
        error = call_error(site, key, "text_rejecting")
        assert "the upstream rejects this call" in error.error.message
        assert UsageRecord.objects.get().outcome == "error"
        assert balance(owner) == 10

    def test_arguments_are_checked_against_the_upstream_schema(self, site, funded, http_upstream):
        owner, key = funded(10)
        priced("text_shout")
        assert call_error(site, key, "text_shout", {"text": 5}).error.code == -32602
        assert not UsageRecord.objects.exists() and balance(owner) == 10

    def test_an_unreachable_upstream_is_an_error_result_and_charges_nothing(
        self, site, funded, http_upstream
    ):
        owner, key = funded(10)
        priced("text_shout")
        UpstreamServer.objects.filter(pk=http_upstream.pk).update(url="http://127.0.0.1:9/mcp")
        catalog.invalidate()
        result = call(site, key, "text_shout", {"text": "hello"})
        assert result.is_error and "unavailable" in result.content[0].text
        assert balance(owner) == 10

    def test_a_tool_the_upstream_stopped_listing_is_disabled(self, http_upstream):
        Tool.objects.create(
            name="text_gone",
            source=Tool.Source.UPSTREAM,
            upstream=http_upstream,
            upstream_name="gone",
        )
        anyio.run(upstream_tools_sync, http_upstream)
        assert not Tool.objects.get(name="text_gone").enabled
        assert Tool.objects.get(name="text_shout").enabled


class TestStdioUpstream:
    def test_a_stdio_tool_is_called_and_billed(self, site, funded, stdio_upstream):
        owner, key = funded(10)
        priced("local_greet", credits=3)
        result = call(site, key, "local_greet", {"name": "Ada"})
        assert result.content[0].text == "Bonjour, Ada"
        assert result.meta["mcpbilling/receipt"]["balance"] == 7
        assert balance(owner) == 7

    def test_calls_share_one_server_process(self, site, funded, stdio_upstream):
        _, key = funded(10)
        priced("local_pid")
        first = call(site, key, "local_pid").content[0].text
        assert call(site, key, "local_pid").content[0].text == first

    def test_only_included_tools_are_offered(self, site, funded, stdio_upstream):
        _, key = funded(10)
        priced("local_greet", "local_shout")
        tools = list_tools(site, key)
        assert "local_greet" in tools and "local_shout" not in tools


def test_env_references_are_expanded(monkeypatch):
    monkeypatch.setenv("UPSTREAM_API_TOKEN", "abc")
    monkeypatch.delenv("UPSTREAM_NOT_SET", raising=False)
    assert env_expanded("Bearer ${UPSTREAM_API_TOKEN}") == "Bearer abc"
    assert env_expanded("${UPSTREAM_NOT_SET}x") == "x"
    assert env_expanded("$UPSTREAM_API_TOKEN") == "$UPSTREAM_API_TOKEN"


def test_only_variables_with_the_upstream_prefix_are_ever_read(monkeypatch, settings):
    """A row (written in the admin or through the API) cannot read the service's secrets."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_secret")
    assert env_expanded("Bearer ${STRIPE_SECRET_KEY}") == "Bearer "
    assert env_expanded("${SECRET_KEY}") == ""
