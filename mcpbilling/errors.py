"""The one application error type services raise, and its REST mapping."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A business rule refused the request; ``code`` is stable and machine-readable.

    ``status`` is the HTTP status an API answers with; ``extra`` carries
    fields the caller can act on (``action_url``, ``retry_after_s``...).
    """

    def __init__(self, code: str, message: str, *, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def drf_exception_handler(exc, context):
    """Render ApplicationError as ``{"error": {...}}``; everything else as DRF does."""
    if isinstance(exc, ApplicationError):
        return Response({"error": exc.as_dict()}, status=exc.status)
    response = exception_handler(exc, context)
    if response is not None and not isinstance(response.data, dict | list):
        response.data = {"detail": response.data}
    return response
