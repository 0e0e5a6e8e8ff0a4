"""`manage.py serve` (what `make run` serves): starts with several web workers, stops cleanly.

``WEB_CONCURRENCY=2 make run`` did not start (the emulator's uvicorn read the
same variable); Ctrl-C printed tracebacks, once exited with an error, and the
Celery worker left a ``control/`` folder in the work tree.
"""

from __future__ import annotations

import signal
import sys

import httpx
import pytest
from django.conf import settings

from tests.factories import api_key
from tests.gateway.support import funded_customer
from tests.processes import Child, child_env, free_port

pytestmark = pytest.mark.django_db(transaction=True)


def _call(url: str, key: str) -> dict:
    response = httpx.post(
        f"{url}/mcp",
        headers={
            "Authorization": f"Bearer {key}",
            "Accept": "application/json, text/event-stream",
        },
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "calculate", "arguments": {"expression": "6 * 7"}},
        },
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_runs_two_web_workers_and_stops_quietly_with_status_0(tmp_path, stop):
    from mcpbilling.gateway.registry import tools_sync_python

    tools_sync_python()
    key = api_key(funded_customer(10)).secret
    port = free_port()
    server = Child(
        argv=[sys.executable, "manage.py", "serve", "--port", str(port)],
        env=child_env(
            tmp_path,
            PORT=str(port),
            STRIPE_EMULATOR_PORT=str(free_port()),
            WEB_CONCURRENCY="2",
            LOG_LEVEL="INFO",
        ),
        log=tmp_path / "serve.log",
        url=f"http://127.0.0.1:{port}",
    ).start()
    try:
        server.wait_ready()
        answers = [_call(server.url, key) for _ in range(4)]
        server.signal(stop)
        status = server.wait(timeout=120)
    finally:
        if server.process.poll() is None:
            server.kill_all()

    output = server.output()
    assert [a["result"]["structuredContent"] for a in answers] == [{"result": 42}] * 4
    assert output.count("Started server process") == 2, output
    assert status == 0, output
    assert "Traceback" not in output, output
    assert "Stopped." in output
    assert not (settings.BASE_DIR / "control").exists()
    assert (tmp_path / "celery" / "control").is_dir()
