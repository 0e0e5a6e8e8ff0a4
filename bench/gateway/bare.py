"""The bare server: the same ``calculate`` on the plain SDK, no authentication or billing.

Served as the billed one is: stateless Streamable HTTP, JSON responses, at /mcp.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpbilling.settings")
django.setup()  # the tool's module imports the registry; this server touches no database

from mcp.server.mcpserver import MCPServer  # noqa: E402

from mcpbilling.gateway.tools.calculate import calculate  # noqa: E402

server = MCPServer("bare")
server.add_tool(calculate)
app = server.streamable_http_app(stateless_http=True, json_response=True)
