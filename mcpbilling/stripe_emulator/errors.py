"""Stripe's error shape: one exception type the handlers raise, rendered as Stripe renders it."""

from __future__ import annotations

from typing import Any

DOCS = "https://stripe.com/docs/error-codes"


class StripeError(Exception):
    """An API error with Stripe's status, type, code, message and param."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON body Stripe sends: ``{"error": {...}}``."""
        error: dict[str, Any] = {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        }
        if self.code:
            error["doc_url"] = f"{DOCS}/{self.code.replace('_', '-')}"
        if self.decline_code:
            error["decline_code"] = self.decline_code
        error.update(self.extra)
        return {"error": error}


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
    """A 400 invalid_request_error."""
    return StripeError(400, "invalid_request_error", message, param=param, code=code)


def missing_param(param: str) -> StripeError:
    """A 400 for a required parameter that was not sent."""
    return invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def no_such(label: str, object_id: str, *, param: str = "id") -> StripeError:
    """A 404 resource_missing, worded as Stripe words it."""
    return StripeError(
        404,
        "invalid_request_error",
        f"No such {label}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def unrecognized_url(method: str, path: str) -> StripeError:
    """A 404 for a route the API does not have."""
    return StripeError(
        404,
        "invalid_request_error",
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs.",
    )


def authentication(message: str) -> StripeError:
    """A 401: Stripe types it as an invalid_request_error."""
    return StripeError(401, "invalid_request_error", message)


def rate_limited(*, retry_after: int | None = None) -> StripeError:
    """A 429 as Stripe sends it, with Retry-After when asked for."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return StripeError(
        429,
        "invalid_request_error",
        "Request rate limit exceeded. Learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        code="rate_limit",
        headers=headers,
    )


def api_error(status: int = 500) -> StripeError:
    """A 5xx api_error."""
    return StripeError(
        status,
        "api_error",
        "An unknown error occurred while processing your request (injected by the emulator).",
    )


def for_status(status: int, *, retry_after: int | None = None) -> StripeError:
    """The error Stripe would send with this status, for injected faults."""
    if status == 429:
        return rate_limited(retry_after=retry_after)
    if status >= 500:
        return api_error(status)
    if status == 401:
        return authentication("Invalid API Key provided (injected by the emulator).")
    if status == 402:
        return StripeError(402, "card_error", "Your card was declined.", code="card_declined")
    if status == 409:
        return StripeError(409, "idempotency_error", "Conflict (injected by the emulator).")
    return StripeError(status, "invalid_request_error", "Injected failure.")
