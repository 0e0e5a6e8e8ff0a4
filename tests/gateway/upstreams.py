"""Upstream MCP servers for the proxy tests: the same tools over Streamable HTTP and stdio.

Run as a script, it serves them over stdio (``python upstreams.py``).
"""

from __future__ import annotations

import os

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from starlette.types import ASGIApp


def upstream_server() -> MCPServer:
    server = MCPServer("test-upstream")

    @server.tool()
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    @server.tool()
    def greet(name: str) -> str:
        """Greet with the GREETING of this server's environment."""
        return f"{os.environ.get('GREETING', 'Hello')}, {name}"

    @server.tool()
    def pid() -> int:
        """The server's process id."""
        return os.getpid()

    @server.tool()
    def token(ctx: Context) -> str:
        """The X-Upstream-Token header the gateway sent."""
        return (ctx.headers or {}).get("x-upstream-token", "")

    @server.tool()
    def broken() -> str:
        """Fail as a tool does."""
        raise ToolError("the upstream tool failed")

    @server.tool()
    def rejecting() -> str:
        """Answer with a JSON-RPC error."""
        raise MCPError(code=-32602, message="the upstream rejects this call")

    @server.tool()
    def hidden() -> str:
        """Excluded by the gateway's configuration."""
        return "should not be reachable"

    return server


def upstream_http_app() -> ASGIApp:
    return upstream_server().streamable_http_app(stateless_http=True, json_response=True)


if __name__ == "__main__":
    upstream_server().run("stdio")
