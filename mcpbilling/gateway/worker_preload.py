"""Imported once by the tool workers' fork server (``workers``), before it forks any.

It sets Django up and imports the tool modules of ``MCP_TOOL_MODULES``, so each
worker forked from the fork server starts with them loaded, in milliseconds.
Nothing else imports this module.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mcpbilling.settings")
django.setup()

from django.conf import settings  # noqa: E402

from mcpbilling.gateway import worker_process  # noqa: E402

worker_process.preload(settings.MCP_TOOL_MODULES)
