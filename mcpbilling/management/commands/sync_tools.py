"""``python manage.py sync_tools``: tool rows for the Python tools and the upstream servers."""

from __future__ import annotations

import anyio
from django.core.management.base import BaseCommand, CommandError

from billing.models import UpstreamServer
from mcpbilling.gateway.catalog import catalog
from mcpbilling.gateway.registry import tools_sync_python
from mcpbilling.gateway.upstream import upstream_tools_sync


class Command(BaseCommand):
    help = (
        "Create or update Tool rows for the @tool functions of MCP_TOOL_MODULES (a first price "
        "from the code when a tool has none) and for the tools each enabled upstream server lists."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--upstream",
            action="append",
            default=None,
            metavar="NAME",
            help="Sync only this upstream server (repeatable).",
        )
        parser.add_argument(
            "--no-upstream", action="store_true", help="Sync only the Python tools."
        )

    def handle(self, *args, upstream=None, no_upstream=False, **options):
        for tool in tools_sync_python():
            self.stdout.write(f"python   {tool.name}")
        failed = []
        if not no_upstream:
            servers = UpstreamServer.objects.filter(enabled=True)
            if upstream:
                servers = servers.filter(name__in=upstream)
            for server in servers:
                try:
                    rows = anyio.run(upstream_tools_sync, server)
                except Exception as exc:  # report each server, go on with the next
                    failed.append(server.name)
                    self.stderr.write(f"upstream {server.name}: {type(exc).__name__}: {exc}")
                    continue
                for tool in rows:
                    self.stdout.write(f"upstream {server.name}: {tool.name}")
        catalog.invalidate()
        if failed:
            raise CommandError(f"could not sync: {', '.join(failed)}")
