"""List endpoints: cursor pagination and the filters Stripe's lists share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import objects
from .errors import invalid
from .forms import Params

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

DEFAULT_LIMIT = 10
MAX_LIMIT = 100


def paginate(items: list[Obj], params: Params, url: str) -> Obj:
    """A page of ``items`` (newest first) by ``limit``, ``starting_after`` and ``ending_before``."""
    limit = _limit(params)
    after = params.str("starting_after")
    before = params.str("ending_before")
    if after:
        rest = items[_position(items, after, "starting_after") + 1 :]
        return objects.list_object(url, rest[:limit], len(rest) > limit)
    if before:
        head = items[: _position(items, before, "ending_before")]
        return objects.list_object(url, head[-limit:], len(head) > limit)
    return objects.list_object(url, items[:limit], len(items) > limit)


def _limit(params: Params) -> int:
    limit = params.int("limit")
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid(
            f"Invalid limit: must be an integer between 1 and {MAX_LIMIT}.", param="limit"
        )
    return limit


def _position(items: list[Obj], cursor: str, param: str) -> int:
    for index, item in enumerate(items):
        if item.get("id") == cursor:
            return index
    raise invalid(f"No such object: '{cursor}'", param=param, code="resource_missing")


def range_filter(params: Params, key: str = "created") -> Predicate:
    """``created=<ts>`` or ``created[gt|gte|lt|lte]=<ts>`` as a predicate on that field."""
    if not params.has(key):
        return lambda obj: True
    if not isinstance(params.raw(key), dict):
        exact = params.int(key)
        return lambda obj: obj.get(key) == exact
    bounds = params.sub(key)
    gt, gte = bounds.int("gt"), bounds.int("gte")
    lt, lte = bounds.int("lt"), bounds.int("lte")

    def within(obj: Obj) -> bool:
        value = obj.get(key) or 0
        return (
            (gt is None or value > gt)
            and (gte is None or value >= gte)
            and (lt is None or value < lt)
            and (lte is None or value <= lte)
        )

    return within


def field_filter(params: Params, *names: str) -> Predicate:
    """Equality filters for the named string parameters that were sent."""
    wanted = {name: params.str(name) for name in names if params.str(name) is not None}
    return lambda obj: all(obj.get(name) == value for name, value in wanted.items())


def bool_filter(params: Params, name: str) -> Predicate:
    """An equality filter for a boolean parameter, when sent."""
    if not params.has(name):
        return lambda obj: True
    wanted = params.bool(name)
    return lambda obj: obj.get(name) == wanted


def all_of(*predicates: Predicate) -> Predicate:
    """A predicate true when every one of ``predicates`` is."""
    return lambda obj: all(predicate(obj) for predicate in predicates)
