"""A small ASGI router: path prefixes go to mounted ASGI apps, the rest to Django.

Django's ASGI handler does not speak lifespan, but a mounted MCP server does
(its session manager starts there), so the router runs each mounted app's
lifespan itself and reports startup/shutdown to the server once all are done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger(__name__)


class _MountedLifespan:
    """Drives one mounted app's lifespan protocol from the router."""

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self.app = app
        self.scope = scope
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self.inbox.get, self.outbox.put)
        except Exception as exc:  # an app without lifespan support may raise
            logger.exception("lifespan of a mounted app failed")
            await self.outbox.put({"type": "lifespan.startup.failed", "message": str(exc)})

    async def startup(self) -> None:
        self.task = asyncio.create_task(self._run())
        await self.inbox.put({"type": "lifespan.startup"})
        reply = await self.outbox.get()
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(reply.get("message") or "a mounted app failed to start")

    async def shutdown(self) -> None:
        if self.task is None or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        reply = await self.outbox.get()
        if reply["type"] != "lifespan.shutdown.complete":
            logger.error("a mounted app failed to shut down: %s", reply.get("message"))
        await self.task


class Router:
    """Send ``prefix`` and ``prefix/...`` to the mounted app, anything else to ``default``."""

    def __init__(self, default: ASGIApp, mounts: dict[str, ASGIApp] | None = None) -> None:
        self.default = default
        self.mounts = dict(mounts or {})

    def app_for(self, path: str) -> ASGIApp:
        for prefix, app in self.mounts.items():
            if path == prefix or path.startswith(prefix + "/"):
                return app
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        await self.app_for(scope.get("path", ""))(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        running: list[_MountedLifespan] = []
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for app in self.mounts.values():
                        mounted = _MountedLifespan(app, scope)
                        await mounted.startup()
                        running.append(mounted)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for mounted in reversed(running):
                    await mounted.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
