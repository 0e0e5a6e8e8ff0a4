"""``python manage.py serve``: the whole embedded stack in the foreground (``make run``).

Each child (uvicorn, the Celery worker with beat, the Stripe emulator) runs in a
session of its own, so Ctrl-C at the terminal reaches only this command, which
then stops them once each, in order: the web server first (it stops taking
requests, lets the calls in flight finish and settle, gives spare holds back
and stops its tool workers, within ``SHUTDOWN_GRACE_S``), then the worker (a
warm shutdown: running tasks finish), then the emulator. SIGTERM does the
same. A second Ctrl-C stops everything at once. The exit status is 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Serve the product: uvicorn on 127.0.0.1:$PORT, a Celery worker with beat, and "
        "(unless a Stripe secret key is set) the Stripe emulator. Runs until interrupted."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1"))
        )
        parser.add_argument("--no-worker", action="store_true", help="do not start Celery")

    def handle(self, *args, host, port, workers, no_worker, **options):
        self.children: dict[str, subprocess.Popen] = {}
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            if settings.STRIPE_EMULATED:
                self._start_emulator()
                self._stripe_prepare(f"http://{host}:{port}")
            if not no_worker:
                self._start_worker()
            web = self._spawn(
                "web",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "mcpbilling.asgi:application",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    "--lifespan",
                    "on",
                    "--proxy-headers",
                    "--timeout-graceful-shutdown",
                    str(settings.SHUTDOWN_GRACE_S),
                ],
            )
            self._banner(host, port)
            while True:
                for name, child in self.children.items():
                    if child.poll() is not None and name != "web":
                        raise CommandError(f"The {name} process exited with {child.returncode}.")
                if web.poll() is not None:
                    break
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("Stopping: the calls in flight finish first (Ctrl-C again: at once).")
        finally:
            self._stop_all()
        self.stdout.write("Stopped.")

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        # A session of its own: the terminal's Ctrl-C reaches this command only.
        child = subprocess.Popen(argv, cwd=settings.BASE_DIR, start_new_session=True)
        self.children[name] = child
        return child

    def _start_emulator(self) -> None:
        port = settings.STRIPE_EMULATOR_PORT
        state = Path(settings.RUN_DIR) / "stripe_emulator.json"
        self._spawn(
            "stripe",
            [
                sys.executable,
                "manage.py",
                "stripe_emulator",
                "--port",
                str(port),
                "--state-file",
                str(state),
            ],
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise CommandError(f"The Stripe emulator did not start on port {port}.")

    def _stripe_prepare(self, site_url: str) -> None:
        """Put the catalogue on the emulator and register this site for its webhooks."""
        from billing.services.stripe_catalog import catalog_stripe_sync
        from webhooks.services import webhook_endpoint_ensure

        catalog_stripe_sync()
        endpoint = webhook_endpoint_ensure(site_url=site_url)
        self.stdout.write(f"Stripe webhooks go to {endpoint.url}")

    def _start_worker(self) -> None:
        if settings.CELERY_BROKER_URL == "filesystem://":
            for folder in ("broker", "processed", "control"):
                (Path(settings.RUN_DIR) / "celery" / folder).mkdir(parents=True, exist_ok=True)
        self._spawn(
            "celery",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "mcpbilling",
                "worker",
                "--beat",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--schedule",
                settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ],
        )

    def _banner(self, host: str, port: int) -> None:
        base = f"http://{host}:{port}"
        key_file = Path(settings.RUN_DIR) / "demo_api_key"
        lines = [
            "",
            f"  Site           {base}/  (sign up, or sign in as demo@example.com)",
            f"  MCP endpoint   {base}/mcp",
            f"  Admin          {base}/admin/",
            f"  Health         {base}/healthz",
        ]
        if settings.STRIPE_EMULATED:
            lines.append(f"  Stripe emulator {settings.STRIPE_API_HOST}")
        if key_file.exists():
            lines.append(f"  Demo API key   {key_file.read_text().strip()}")
        if settings.EMAIL_BACKEND.endswith(".console.EmailBackend"):
            lines.append("  Mail (sign-up verification, password reset) is printed below.")
        self.stdout.write("\n".join([*lines, "  Ctrl-C stops everything.", ""]))

    def _stop_all(self) -> None:
        """Stop the children once each, in order, each within its grace; kill what lingers.

        A second Ctrl-C (or SIGTERM) while waiting kills every child at once.
        """
        try:
            for name in ("web", "celery", "stripe"):
                child = self.children.get(name)
                if child is None or child.poll() is not None:
                    continue
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=settings.SHUTDOWN_GRACE_S + 10)
                except subprocess.TimeoutExpired:
                    self.stderr.write(f"The {name} process did not stop in time; killed.")
                    child.kill()
        except KeyboardInterrupt:
            self.stderr.write("Killed without waiting.")
        finally:
            for child in self.children.values():
                if child.poll() is None:
                    child.kill()
                child.wait()


def _interrupt(signum, frame) -> None:
    """SIGTERM stops the stack as Ctrl-C does."""
    raise KeyboardInterrupt
