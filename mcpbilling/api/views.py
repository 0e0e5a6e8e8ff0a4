"""The API's own views: the answer for a path that names nothing."""

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from mcpbilling.api.errors import error_body


@csrf_exempt  # it changes nothing, whatever the method: no CSRF page instead of the 404
def not_found(request, path: str = ""):
    """A path under /api/v1/ that names no endpoint, in the one error shape."""
    return JsonResponse(
        error_body("not_found", f"No endpoint at {request.path}; see /api/v1/docs/."), status=404
    )
