"""The one application error type services raise (the REST API maps it in mcpbilling/api)."""

from __future__ import annotations

from typing import Any


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
