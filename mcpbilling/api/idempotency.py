"""``Idempotency-Key`` on every POST to the API, as Stripe does it (docs/decisions/0021).

The first request with a key runs in one transaction with the row that keeps
its answer; a repeat with the same key and the same request gets that answer
again (header ``Idempotent-Replayed: true``) and changes nothing; the same key
with another request is a 409. A repeat sent while the first is running waits
for it on the row's unique index, then replays it. Only successes are kept: a
request that failed changed nothing, so its key may be sent again. Keys belong
to the operator who sent them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.settings import api_settings

from mcpbilling.api.errors import error_body, status_for
from mcpbilling.api.models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
API_ROOT = "/api/v1/"
MAX_KEY_LENGTH = 255


def _cipher() -> Fernet:
    digest = hashlib.sha256(b"mcpbilling.api.idempotency\0" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def request_fingerprint(request: HttpRequest) -> str:
    """SHA-256 of what makes two requests the same: method, path, query and body.

    A JSON body counts by its content, not its spacing or key order.
    """
    body = request.body
    with contextlib.suppress(ValueError, UnicodeDecodeError):  # not JSON: compared as sent
        body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def idempotency_purge(*, now=None) -> int:
    """Remove the keys past their time; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.API_IDEMPOTENCY_TTL_H)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def _refusal(code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status_for(code))


def _replay(row: IdempotencyKey) -> HttpResponse:
    try:
        body = _cipher().decrypt(bytes(row.response_body))
    except InvalidToken:  # SECRET_KEY changed since: the answer cannot be given again
        return _refusal(
            "idempotency_key_reused",
            "This Idempotency-Key was used before and its answer can no longer be read; "
            "use a new key.",
        )
    response = HttpResponse(body, status=row.status_code, content_type=row.content_type)
    response[REPLAYED_HEADER] = "true"
    return response


def _operator(request: HttpRequest):
    """The staff user the API will authenticate this request as, or None."""
    authenticators = [auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    try:
        user = Request(request, authenticators=authenticators).user
    except APIException:
        return None
    return user if user.is_authenticated and user.is_staff else None


class IdempotencyMiddleware:
    """Applies ``Idempotency-Key`` to every POST under /api/v1/ (see the module's doc)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.headers.get(HEADER)
        if request.method != "POST" or key is None or not request.path.startswith(API_ROOT):
            return self.get_response(request)
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            return _refusal(
                "validation_error",
                f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters.",
            )
        user = _operator(request)
        if user is None:  # the view answers 401 or 403
            return self.get_response(request)
        fingerprint = request_fingerprint(request)
        with transaction.atomic():
            row, answer = self._claim(user, key, fingerprint)
            if answer is not None:
                return answer
            response = self.get_response(request)
            if not 200 <= response.status_code < 300 or response.streaming:
                transaction.set_rollback(True)  # the key stays free, as nothing changed
                return response
            row.status_code = response.status_code
            row.content_type = response.get("Content-Type", "")
            row.response_body = _cipher().encrypt(response.content)
            row.save(update_fields=["status_code", "content_type", "response_body"])
            return response

    def _claim(self, user, key: str, fingerprint: str):
        """This request's row, or the answer to give instead of running it."""
        for _ in range(2):
            try:
                with transaction.atomic():
                    row = IdempotencyKey.objects.create(
                        user=user,
                        key=key,
                        request_fingerprint=fingerprint,
                        status_code=0,
                        response_body=b"",
                    )
                return row, None
            except IntegrityError:
                # Taken, by a request that has committed (a concurrent one held the
                # index entry until it did, and then either committed or gave it up).
                pass
            earlier = IdempotencyKey.objects.filter(user=user, key=key).first()
            if earlier is None:
                continue  # given up meanwhile: claim it
            if earlier.created_at < timezone.now() - timedelta(
                hours=settings.API_IDEMPOTENCY_TTL_H
            ):
                earlier.delete()  # expired: the key is new again
                continue
            if earlier.request_fingerprint != fingerprint:
                return None, _refusal(
                    "idempotency_key_reused",
                    f"This {HEADER} was sent before with another request (method, path or "
                    "body); use a new key for a new request.",
                )
            return None, _replay(earlier)
        return None, _refusal(
            "idempotency_key_reused", f"This {HEADER} is in use by another request; retry."
        )
