"""The ASGI router: prefixes to mounted apps, lifespan run for them."""

import contextlib

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mcpbilling.router import Router


def mounted_app(events):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("started")
        yield
        events.append("stopped")

    async def hello(request):
        return PlainTextResponse(f"mounted {request.url.path}")

    return Starlette(routes=[Route("/mcp", hello), Route("/mcp/x", hello)], lifespan=lifespan)


async def default_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"default"})


@pytest.mark.anyio
async def test_prefix_goes_to_the_mounted_app_and_the_rest_to_the_default():
    router = Router(default_app, mounts={"/mcp": mounted_app([])})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(router), base_url="http://t") as c:
        assert (await c.get("/mcp")).text == "mounted /mcp"
        assert (await c.get("/mcp/x")).text == "mounted /mcp/x"
        assert (await c.get("/mcpx")).text == "default"
        assert (await c.get("/admin/")).text == "default"


@pytest.mark.anyio
async def test_lifespan_starts_and_stops_mounted_apps():
    events, sent = [], []
    router = Router(default_app, mounts={"/mcp": mounted_app(events)})
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive():
        return next(incoming)

    async def send(message):
        sent.append(message["type"])

    await router({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert events == ["started", "stopped"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.anyio
async def test_a_mounted_app_that_fails_to_start_fails_startup():
    async def broken(scope, receive, send):
        raise RuntimeError("no database")

    sent = []

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        sent.append(message)

    await Router(default_app, mounts={"/mcp": broken})({"type": "lifespan"}, receive, send)
    assert sent[-1]["type"] == "lifespan.startup.failed" and "no database" in sent[-1]["message"]
