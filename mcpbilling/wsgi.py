"""WSGI entry point (the admin and REST API only; /mcp needs the ASGI app)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpbilling.settings")

application = get_wsgi_application()
