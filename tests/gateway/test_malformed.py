"""Whatever a client sends, /mcp answers with a clear error, never a 500, and charges nothing."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Hold, UsageRecord
from tests.gateway.support import balance

pytestmark = pytest.mark.django_db(transaction=True)

MODERN = "2026-07-28"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "fuzz", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Arguments calculate must refuse: its one argument missing, of a wrong type, or too long.
bad_calculate_arguments = st.one_of(
    st.dictionaries(st.text(max_size=10).filter(lambda key: key != "expression"), json_values),
    st.fixed_dictionaries({"expression": json_values.filter(lambda v: not isinstance(v, str))}),
    st.fixed_dictionaries({"expression": st.text(min_size=501, max_size=600)}),
    json_values.filter(lambda value: not isinstance(value, dict)),
)
tool_calls = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "id": st.integers(0, 10**6) | st.text(max_size=8),
        "method": st.just("tools/call"),
        "params": st.fixed_dictionaries(
            {
                # calculate, or a name no tool has
                "name": st.just("calculate") | st.text(max_size=12).map(lambda n: f"x_{n}"),
                "arguments": bad_calculate_arguments,
            },
            optional={"_meta": st.just(MODERN_META) | json_values},
        ),
    }
)
other_requests = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0") | st.text(max_size=4),
        "id": json_values,
        "method": st.sampled_from(
            ["tools/list", "tools/call", "no/such/method", "initialize", "resources/read", ""]
        )
        | st.text(max_size=15),
    },
    optional={"params": json_values},
)
bodies = st.one_of(
    tool_calls.map(json.dumps),
    other_requests.map(json.dumps),
    st.lists(tool_calls, min_size=1, max_size=3).map(json.dumps),  # a batch
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200),
)


def routing_headers(body: str | bytes) -> dict[str, str]:
    """The 2026-07-28 wire's routing headers, derived from the body as a client would."""
    headers = {"MCP-Protocol-Version": MODERN}
    try:
        message = json.loads(body)
    except ValueError:
        return headers
    method = message.get("method") if isinstance(message, dict) else None
    if isinstance(method, str) and method.isascii() and method.isprintable():
        headers["Mcp-Method"] = method
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        if (
            method == "tools/call"
            and isinstance(name, str)
            and name.isascii()
            and name.isprintable()
        ):
            headers["Mcp-Name"] = name
    return headers


def post(url: str, key: str, body: str | bytes, *, modern: bool) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    if modern:
        headers.update(routing_headers(body))
    content = body.encode() if isinstance(body, str) else body
    return httpx.post(f"{url}/mcp", content=content, headers=headers, timeout=30)


def assert_clear_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.content and response.headers["content-type"].startswith("application/json"):
        reply = response.json()
        assert "error" in reply or "result" in reply, reply


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, modern=st.booleans())
def test_any_body_gets_a_clear_error_and_no_charge(site, funded_once, body, modern):
    owner, key = funded_once
    assert_clear_error(post(site, key, body, modern=modern))
    assert not Hold.objects.exists() and not UsageRecord.objects.exists()
    assert balance(owner) == 10


@pytest.fixture
def funded_once(funded):
    return funded(10)


@pytest.mark.parametrize("modern", [False, True])
class TestExamples:
    def test_malformed_json_is_a_parse_error(self, site, funded_once, modern):
        response = post(site, funded_once[1], "{not json", modern=modern)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == -32700

    def test_an_unknown_method_is_method_not_found(self, site, funded_once, modern):
        params = {"_meta": MODERN_META} if modern else {}
        body = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/frobnicate", "params": params}
        )
        response = post(site, funded_once[1], body, modern=modern)
        assert response.status_code < 500
        assert response.json()["error"]["code"] == -32601

    def test_a_huge_body_is_refused_before_it_is_read(self, site, funded_once, modern):
        arguments = {"expression": "1+" * 200_000}
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "calculate", "arguments": arguments},
            }
        )
        response = post(site, funded_once[1], body, modern=modern)
        assert response.status_code == 413
        assert not UsageRecord.objects.exists()
