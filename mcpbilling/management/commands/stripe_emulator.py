"""``manage.py stripe_emulator``: serve the Stripe emulator in the foreground until interrupted."""

from __future__ import annotations

from pathlib import Path

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from mcpbilling.stripe_emulator.app import create_app


class Command(BaseCommand):
    """Run the offline Stripe emulator (API, hosted pages, ``/_emulator/`` helpers)."""

    help = "Run the Stripe emulator in the foreground until interrupted."

    def add_arguments(self, parser: CommandParser) -> None:
        """Port, host and state file."""
        parser.add_argument(
            "--port",
            type=int,
            default=getattr(settings, "STRIPE_EMULATOR_PORT", 12111),
            help="Port to listen on (default: settings.STRIPE_EMULATOR_PORT, 12111).",
        )
        parser.add_argument("--host", default="127.0.0.1", help="Interface (default 127.0.0.1).")
        parser.add_argument(
            "--state-file",
            type=Path,
            default=None,
            help="JSON file the state is loaded from and saved to, so restarts keep it.",
        )

    def handle(
        self, *args: object, port: int, host: str, state_file: Path | None, **options: object
    ) -> None:
        """Serve until interrupted."""
        app = create_app(state_file=state_file)
        kept = f", state in {state_file}" if state_file else ""
        self.stdout.write(f"Stripe emulator on http://{host}:{port} (test keys only{kept})")
        # One process, whatever WEB_CONCURRENCY says (uvicorn reads it as its default).
        uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="on", workers=1)
