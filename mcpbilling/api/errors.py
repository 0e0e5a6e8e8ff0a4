"""The one error shape of the REST API, from one exception handler.

Every failure answers ``{"error": {"code": str, "message": str, "fields"?:
{name: [message]}}}``. Services raise ``ApplicationError`` with a code; this
module alone decides the HTTP status of each code (``STATUS_BY_CODE``, 400
when a code is not listed). DRF's own exceptions keep their statuses.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from mcpbilling.errors import ApplicationError

logger = logging.getLogger(__name__)

# HTTP status of each code services raise; codes not listed answer 400.
STATUS_BY_CODE: dict[str, int] = {
    # A request that does not fit the state of what it names.
    "customer_exists": status.HTTP_409_CONFLICT,
    "customer_inactive": status.HTTP_409_CONFLICT,
    "subscription_active": status.HTTP_409_CONFLICT,
    "insufficient_credits": status.HTTP_409_CONFLICT,
    "not_charged": status.HTTP_409_CONFLICT,
    "already_collected": status.HTTP_409_CONFLICT,
    "already_reported": status.HTTP_409_CONFLICT,
    "hold_not_open": status.HTTP_409_CONFLICT,
    "key_revoked": status.HTTP_409_CONFLICT,
    "not_requeueable": status.HTTP_409_CONFLICT,
    "event_finished": status.HTTP_409_CONFLICT,
    "subscription_ended": status.HTTP_409_CONFLICT,
    "in_use": status.HTTP_409_CONFLICT,
    "price_conflict": status.HTTP_409_CONFLICT,
    "idempotency_conflict": status.HTTP_409_CONFLICT,
    "idempotency_key_reused": status.HTTP_409_CONFLICT,
    # Something this service depends on failed.
    "upstream_unreachable": status.HTTP_424_FAILED_DEPENDENCY,
    "stripe_refused": status.HTTP_424_FAILED_DEPENDENCY,
    "stripe_unavailable": status.HTTP_503_SERVICE_UNAVAILABLE,
    # Not found by what the request named.
    "grant_not_found": status.HTTP_404_NOT_FOUND,
    "not_found": status.HTTP_404_NOT_FOUND,
    # The service's own invariants broke: a bug, never the caller's fault.
    "ledger_inconsistent": status.HTTP_500_INTERNAL_SERVER_ERROR,
    "key_prefix_exhausted": status.HTTP_500_INTERNAL_SERVER_ERROR,
}

VALIDATION_MESSAGE = "Some fields are not valid: see fields."


def status_for(code: str) -> int:
    return STATUS_BY_CODE.get(code, status.HTTP_400_BAD_REQUEST)


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def error_response(
    code: str, message: str, *, status_code: int | None = None, fields=None, headers=None
) -> Response:
    return Response(
        error_body(code, message, fields),
        status=status_code or status_for(code),
        headers=headers,
    )


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as ``{"field.sub.0": ["message", ...]}``."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for name, value in detail.items():
            flat.update(_flatten(value, f"{prefix}{name}."))
        return flat
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        flat = {}
        for index, value in enumerate(detail):
            flat.update(_flatten(value, f"{prefix}{index}."))
        return flat
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix.rstrip(".") or "non_field_errors": [str(message) for message in messages]}


def _validation_response(detail: Any) -> Response:
    fields = _flatten(detail)
    general = fields.pop("non_field_errors", None)
    message = " ".join(general) if general else VALIDATION_MESSAGE
    return error_response("validation_error", message, fields=fields or None)


def api_exception_handler(exc: Exception, context: dict) -> Response:
    """Every exception an API view raises, as the one error shape."""
    if isinstance(exc, ApplicationError):
        fields = exc.extra.get("fields")
        return error_response(
            exc.code, exc.message, fields=fields if isinstance(fields, dict) else None
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Nothing here by that id.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DjangoValidationError):
        return _validation_response(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    elif isinstance(exc, ProtectedError | RestrictedError):
        return error_response("in_use", "Other records refer to this one, so it is kept.")
    if isinstance(exc, exceptions.ValidationError):
        return _validation_response(exc.detail)
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        code = exc.default_code
        if isinstance(exc.detail, exceptions.ErrorDetail) and exc.detail.code:
            code = exc.detail.code
        return error_response(
            code, str(exc.detail), status_code=exc.status_code, headers=headers or None
        )
    view = context.get("view")
    logger.exception("API view %s failed", type(view).__name__ if view else "?")
    return error_response(
        "internal_error",
        "Something went wrong on our side; nothing was changed. Try again later.",
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
