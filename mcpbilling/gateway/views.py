"""RFC 9728 protected-resource metadata of /mcp, where 401 answers point clients."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET


@cache_control(public=True, max_age=3600)
@require_GET
def protected_resource_metadata(request: HttpRequest) -> JsonResponse:
    metadata: dict = {
        "resource": f"{settings.SITE_URL.rstrip('/')}/mcp",
        "bearer_methods_supported": ["header"],
        "resource_name": "MCP Billing",
    }
    if settings.JWT_ISSUER:  # API keys need no authorization server; operator JWTs name theirs
        metadata["authorization_servers"] = [settings.JWT_ISSUER]
    return JsonResponse(metadata)
