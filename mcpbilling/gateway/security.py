"""Which Host and Origin headers /mcp accepts (DNS-rebinding protection).

The SDK's own check takes ``name:*`` to mean "anything after ``name:``", so
``Host: 127.0.0.1:x.evil.example`` passed it. Here ``name:*`` means ``name``
with a port number, nothing else; other entries must match exactly. Refusals
answer 421 (Host) and 403 (Origin) as the SDK does, and a POST that is not
JSON 400.
"""

from __future__ import annotations

import logging
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

logger = logging.getLogger(__name__)

PORT = re.compile(r"[0-9]{1,5}")


def allowed(value: str, patterns: list[str]) -> bool:
    """Whether ``value`` is one of ``patterns``, where ``x:*`` stands for ``x:<port>``."""
    for pattern in patterns:
        if value == pattern:
            return True
        if pattern.endswith(":*"):
            base, _, port = value.rpartition(":")
            if base == pattern[:-2] and PORT.fullmatch(port) and 0 < int(port) < 65536:
                return True
    return False


def _refused(status: int, message: str) -> Response:
    return JSONResponse({"error": {"code": "request_refused", "message": message}}, status)


def request_refused(
    request: Request, *, allowed_hosts: list[str], allowed_origins: list[str]
) -> Response | None:
    """The answer to a request whose headers /mcp does not accept, else None."""
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("application/json"):
            return _refused(400, "Send the request as Content-Type: application/json.")
    host = request.headers.get("host", "")
    if not allowed(host, allowed_hosts):
        logger.warning("refused /mcp request for Host %r", host[:200])
        return _refused(421, "This server does not answer for that Host.")
    origin = request.headers.get("origin")
    if origin is not None and not allowed(origin, allowed_origins):
        logger.warning("refused /mcp request from Origin %r", origin[:200])
        return _refused(403, "Requests from that Origin are not accepted.")
    return None
