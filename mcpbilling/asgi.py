"""ASGI entry point: the router in front of Django, with lifespan.

Run it with an ASGI server that runs lifespan (``uvicorn mcpbilling.asgi:application``).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpbilling.settings")

django_application = get_asgi_application()

# Imported after Django is set up: the gateway uses the ORM.
from mcpbilling.gateway.server import gateway_app  # noqa: E402
from mcpbilling.router import Router  # noqa: E402

application = Router(django_application, mounts={"/mcp": gateway_app()})
