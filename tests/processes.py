"""The real server as a child process, for tests that signal, kill and restart it.

The child gets this test run's database (``database_url``) and Redis, free
ports and a run folder of its own, and the default handling of SIGINT (a child
of a background shell would otherwise inherit SIGINT ignored).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of the database this test uses (the test database), for a child process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or "postgres"
    auth = f"{user}:{db['PASSWORD']}" if db["PASSWORD"] else user
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Child:
    """A started child process, its output in ``log``."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    url: str
    process: subprocess.Popen | None = None
    restarts: int = field(default=0)

    def start(self) -> Child:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_default_sigint,
                start_new_session=True,
            )
        return self

    def wait_ready(self, path: str = "/mcp", *, timeout: float = 120.0) -> None:
        """Until ``path`` answers with anything but a connection error."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(
                    f"the server exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                httpx.get(f"{self.url}{path}", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError(f"the server did not start in {timeout} s:\n{self.output()}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill_all(self) -> None:
        """SIGKILL the child's whole session (its workers and tool processes too)."""
        assert self.process is not None
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def child_env(run_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "RUN_DIR": str(run_dir),
        "PYTHONUNBUFFERED": "1",
        "MCP_SYNC_TOOLS_ON_STARTUP": "0",
        "LOG_LEVEL": "WARNING",
    }
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    env.update(extra)
    return env


@contextmanager
def uvicorn_server(tmp_path: Path, *, workers: int = 1, **extra_env: str) -> Iterator[Child]:
    """The site (Django and /mcp) served by uvicorn as ``make run`` and production run it."""
    port = free_port()
    child = Child(
        argv=[
            sys.executable,
            "-m",
            "uvicorn",
            "mcpbilling.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--lifespan",
            "on",
            "--timeout-graceful-shutdown",
            "30",
            "--no-access-log",
        ],
        env=child_env(tmp_path, PORT=str(port), **extra_env),
        log=tmp_path / "server.log",
        url=f"http://127.0.0.1:{port}",
    )
    child.start()
    try:
        yield child
    finally:
        if child.process is not None and child.process.poll() is None:
            child.kill_all()
