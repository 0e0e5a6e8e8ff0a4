"""``/connect/``: the endpoint and ready-to-paste set-ups for MCP hosts and SDKs.

The set-ups are filled with this site's MCP URL and, in the browser, with a key the
customer types or has just created (it never reaches our server from this page). The
"test call" button calls a free tool through the real endpoint from the browser, as
an agent would, and shows the receipt.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from billing.selectors import ToolOffer, tools_offered
from customers.access import customer_required
from customers.selectors import api_key_list

KEY_PLACEHOLDER = "mcpb_YOUR_API_KEY"
SERVER_NAME = "mcp-billing"
# Arguments that show what the built-in tools do; other tools get values from their schema.
EXAMPLES: dict[str, dict[str, Any]] = {
    "calculate": {"expression": "2 * (3 + 4)"},
    "convert_units": {"value": 10, "from_unit": "km", "to_unit": "mi"},
    "text_stats": {"text": "The quick brown fox jumps over the lazy dog."},
    "hash_text": {"text": "hello"},
    "json_query": {"document": {"a": {"b": [1, 2, 3]}}, "path": "a.b[1]"},
}
SCHEMA_SAMPLES = {"string": "text", "integer": 1, "number": 1.5, "boolean": True}


def example_arguments(offer: ToolOffer) -> dict[str, Any]:
    """Arguments for a first call of the tool: a known example, or its required fields filled."""
    if offer.tool.name == "date_calc":
        return {"start": timezone.now().date().isoformat(), "days": 30}
    if offer.tool.name in EXAMPLES:
        return EXAMPLES[offer.tool.name]
    schema = offer.tool.input_schema or {}
    properties = schema.get("properties") or {}
    return {
        name: SCHEMA_SAMPLES.get((properties.get(name) or {}).get("type"), "text")
        for name in schema.get("required") or []
    }


def _pick(offers: list[ToolOffer], *, free: bool, preferred: str) -> ToolOffer | None:
    matching = [offer for offer in offers if offer.free == free]
    return next(
        (o for o in matching if o.tool.name == preferred), matching[0] if matching else None
    )


def setups(*, mcp_url: str, tool: str, arguments: dict[str, Any]) -> list[dict[str, str]]:
    """The set-ups of the common MCP hosts and SDKs, filled with the URL and the example call."""
    auth = f"Bearer {KEY_PLACEHOLDER}"
    args_json = json.dumps(arguments)
    call_body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
    )
    mcp_json = json.dumps(
        {"mcpServers": {SERVER_NAME: {"url": mcp_url, "headers": {"Authorization": auth}}}},
        indent=2,
    )
    vscode_json = json.dumps(
        {
            "servers": {
                SERVER_NAME: {"type": "http", "url": mcp_url, "headers": {"Authorization": auth}}
            }
        },
        indent=2,
    )
    python = f'''import asyncio

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

URL = "{mcp_url}"
API_KEY = "{KEY_PLACEHOLDER}"


async def main():
    headers = {{"Authorization": f"Bearer {{API_KEY}}"}}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with Client(streamable_http_client(URL, http_client=http)) as client:
            tools = await client.list_tools()
            print("tools:", [tool.name for tool in tools.tools])
            result = await client.call_tool("{tool}", {args_json})
            print(result.content[0].text)
            print("receipt:", (result.meta or {{}}).get("mcpbilling/receipt"))


asyncio.run(main())
'''
    sdk = "@modelcontextprotocol/sdk/client"
    typescript = f"""import {{ Client }} from "{sdk}/index.js";
import {{ StreamableHTTPClientTransport }} from "{sdk}/streamableHttp.js";

const transport = new StreamableHTTPClientTransport(new URL("{mcp_url}"), {{
  requestInit: {{ headers: {{ Authorization: "{auth}" }} }},
}});
const client = new Client({{ name: "my-agent", version: "1.0.0" }});
await client.connect(transport);

const result = await client.callTool({{ name: "{tool}", arguments: {args_json} }});
console.log(result.content, result._meta?.["mcpbilling/receipt"]);
await client.close();
"""
    curl = f"""curl -sS {mcp_url} \\
  -H "Authorization: {auth}" \\
  -H "Content-Type: application/json" \\
  -H "Accept: application/json, text/event-stream" \\
  -d '{call_body}'
"""
    claude_code = (
        f"claude mcp add --transport http {SERVER_NAME} {mcp_url} "
        f'--header "Authorization: {auth}"\n'
    )
    return [
        {
            "id": "mcp-json",
            "title": "mcp.json",
            "hint": "Cursor (~/.cursor/mcp.json), Windsurf, and other hosts that read an "
            "mcpServers entry.",
            "language": "json",
            "code": mcp_json,
        },
        {
            "id": "vscode",
            "title": "VS Code",
            "hint": ".vscode/mcp.json in your project.",
            "language": "json",
            "code": vscode_json,
        },
        {
            "id": "claude-code",
            "title": "Claude Code",
            "hint": "Run once in a terminal.",
            "language": "shell",
            "code": claude_code,
        },
        {
            "id": "python",
            "title": "Python SDK",
            "hint": 'pip install "mcp>=2"',
            "language": "python",
            "code": python,
        },
        {
            "id": "typescript",
            "title": "TypeScript SDK",
            "hint": "npm install @modelcontextprotocol/sdk (ES module, Node 18+).",
            "language": "typescript",
            "code": typescript,
        },
        {
            "id": "curl",
            "title": "curl",
            "hint": "One stateless JSON-RPC request; the reply's result._meta has the receipt.",
            "language": "shell",
            "code": curl,
        },
    ]


@customer_required
@require_GET
def connect(request: HttpRequest) -> HttpResponse:
    """The endpoint URL, the set-ups, and the test call."""
    mcp_url = f"{settings.SITE_URL.rstrip('/')}/mcp"
    offers = tools_offered()
    example = _pick(offers, free=False, preferred="calculate") or _pick(
        offers, free=True, preferred="date_calc"
    )
    free = _pick(offers, free=True, preferred="date_calc")
    example_name = example.tool.name if example else "calculate"
    example_args = example_arguments(example) if example else {}
    context = {
        "customer": request.customer,
        "mcp_url": mcp_url,
        "key_placeholder": KEY_PLACEHOLDER,
        "setups": setups(mcp_url=mcp_url, tool=example_name, arguments=example_args),
        "example": example,
        "test_tool": free,
        "test_arguments": json.dumps(example_arguments(free)) if free else "",
        "has_keys": any(key.status == "active" for key in api_key_list(customer=request.customer)),
    }
    return render(request, "billing/connect.html", context)
