"""Who may use the API: staff only, each request under the operator's model permissions."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

# The model permission a method needs on the view's model.
ACTION_OF_METHOD = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


def permissions_required(view, method: str) -> list[str]:
    """The permissions ``method`` on ``view`` needs, as ``app_label.codename``.

    A view names them per method in ``operator_permissions`` (an action such as
    a refund is a change of the record, not an addition); otherwise they follow
    the model of its ``queryset``: GET needs view, POST add, PATCH change,
    DELETE delete.
    """
    explicit = getattr(view, "operator_permissions", {})
    if method in explicit:
        return list(explicit[method])
    model = view.queryset.model
    action = ACTION_OF_METHOD.get(method)
    if action is None:
        return ["-"]  # no one has it: an unknown method is refused
    return [f"{model._meta.app_label}.{action}_{model._meta.model_name}"]


class OperatorPermissions(BasePermission):
    """Staff users whose Django model permissions allow what the request does.

    A view-only operator (view permissions only) can read and cannot write.
    """

    message = "Only staff may use this API."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff and user.is_active):
            return False
        needed = permissions_required(view, request.method)
        if user.has_perms(needed):
            return True
        self.message = f"Your account lacks the permission {', '.join(needed)} for this."
        return False


class StaffOnly(BasePermission):
    """Any active staff user: the schema and the docs, which hold no data."""

    message = "Only staff may use this API."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff and user.is_active)
