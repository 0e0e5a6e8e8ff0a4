"""The Stripe webhook endpoint: dj-stripe's view behind the checks it does not make.

dj-stripe stores the request, verifies its signature and records the event. In
front of it this view refuses what dj-stripe would let through:

- an ``X-Djstripe-Webhook-Secret`` header, which dj-stripe (with ``DEBUG`` on)
  takes as the secret to verify the signature with, so anyone could sign their
  own events; it is refused whatever ``DEBUG`` says;
- a signature whose timestamp lies further in the future than the endpoint's
  tolerance (Stripe's library only refuses old ones).
"""

from __future__ import annotations

import logging
import time

from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from djstripe.models import WebhookEndpoint
from djstripe.views import ProcessWebhookView

logger = logging.getLogger(__name__)

SECRET_OVERRIDE_HEADER = "X-Djstripe-Webhook-Secret"
_djstripe_view = ProcessWebhookView.as_view()


def _refused(message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": "webhook_refused", "message": message}}, status=400)


def signature_timestamp(header: str) -> int | None:
    """The ``t=`` of a ``Stripe-Signature`` header, or None when it has none."""
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            return int(value) if value.isdigit() else None
    return None


@csrf_exempt
@login_not_required
@transaction.non_atomic_requests  # dj-stripe keeps the record of a failure
def stripe_webhook(request: HttpRequest, uuid) -> HttpResponse:
    """Refuse the secret override and future timestamps, then hand over to dj-stripe."""
    if SECRET_OVERRIDE_HEADER in request.headers:
        logger.warning("refused a Stripe webhook carrying %s", SECRET_OVERRIDE_HEADER)
        return _refused(f"The {SECRET_OVERRIDE_HEADER} header is not accepted.")
    endpoint = get_object_or_404(WebhookEndpoint, djstripe_uuid=uuid)
    timestamp = signature_timestamp(request.headers.get("Stripe-Signature", ""))
    if timestamp is not None and timestamp > time.time() + endpoint.djstripe_tolerance:
        logger.warning("refused a Stripe webhook signed %d s ahead", timestamp - time.time())
        return _refused("The signature's timestamp is in the future.")
    return _djstripe_view(request, uuid=uuid)
