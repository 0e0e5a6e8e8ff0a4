"""The hosted MCP endpoint: every tool call authenticated, rate limited, priced and settled.

``server.gateway_app()`` is the ASGI app mounted at ``/mcp``; docs/gateway.md
describes the path of a call.
"""
