"""Operators of the API: two groups holding the model permissions the API checks.

``Operators`` may do everything the API offers; ``Operators (view only)`` may
read everything and change nothing. Staff users get their powers from these
groups (or from permissions an admin gives them one by one); superusers have all.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q

OPERATORS = "Operators"
VIEWERS = "Operators (view only)"
# The apps whose models the API serves; dj-stripe's mirror is read, and its
# subscriptions cancelled, through Stripe.
API_APPS = ("customers", "billing", "webhooks")


def _operator_permissions(*, view_only: bool):
    ours = Q(content_type__app_label__in=API_APPS)
    mirror = Q(content_type__app_label="djstripe", codename__startswith="view_")
    if view_only:
        return Permission.objects.filter((ours | mirror) & Q(codename__startswith="view_"))
    cancel = Q(content_type__app_label="djstripe", codename="change_subscription")
    return Permission.objects.filter(ours | mirror | cancel)


@transaction.atomic
def operator_groups_ensure() -> tuple[Group, Group]:
    """The two groups, with the permissions of every model the API serves today."""
    operators, _ = Group.objects.get_or_create(name=OPERATORS)
    operators.permissions.set(_operator_permissions(view_only=False))
    viewers, _ = Group.objects.get_or_create(name=VIEWERS)
    viewers.permissions.set(_operator_permissions(view_only=True))
    return operators, viewers


@transaction.atomic
def operator_enrol(*, user, view_only: bool = False) -> None:
    """Make ``user`` a staff operator with full or view-only powers (one group or the other)."""
    operators, viewers = operator_groups_ensure()
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    user.groups.remove(operators if view_only else viewers)
    user.groups.add(viewers if view_only else operators)
