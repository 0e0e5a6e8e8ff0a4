"""The billed server: Django behind the router with the gateway at /mcp, as mcpbilling.asgi."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpbilling.settings")
django_application = get_asgi_application()

from mcpbilling.gateway.server import gateway_app  # noqa: E402
from mcpbilling.router import Router  # noqa: E402

app = Router(django_application, mounts={"/mcp": gateway_app()})
