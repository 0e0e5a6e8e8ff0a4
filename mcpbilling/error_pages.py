"""Error pages: in the site's layout for people, in the one JSON error shape under /api/.

Django calls these for 404, 403, 500 and CSRF failures when ``DEBUG`` is off.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views.decorators.csrf import requires_csrf_token
from django.views.defaults import server_error as django_server_error

API_PREFIX = "/api/"
MESSAGES = {
    403: ("permission_denied", "You do not have permission to do this."),
    404: ("not_found", "Not found."),
    500: ("server_error", "Something went wrong on our side."),
}


def _api(request: HttpRequest | None) -> bool:
    return request is not None and request.path.startswith(API_PREFIX)


def _json(status: int) -> JsonResponse:
    code, message = MESSAGES[status]
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@requires_csrf_token
def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _api(request):
        return _json(404)
    return HttpResponse(render_to_string("404.html", request=request), status=404)


@requires_csrf_token
def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _api(request):
        return _json(403)
    return HttpResponse(render_to_string("403.html", request=request), status=403)


@requires_csrf_token
def server_error(request: HttpRequest) -> HttpResponse:
    """The layout without the request's context: what failed may be in it."""
    if _api(request):
        return _json(500)
    return django_server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _api(request):
        return JsonResponse(
            {"error": {"code": "csrf_failed", "message": "CSRF verification failed."}},
            status=403,
        )
    return HttpResponse(render_to_string("403_csrf.html", request=request), status=403)
