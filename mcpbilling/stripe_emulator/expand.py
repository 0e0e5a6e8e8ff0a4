"""``expand[]``: replace ids in a response by the objects, down dotted paths and through lists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import invalid
from .store import Store, public

Obj = dict[str, Any]
Virtual = Callable[[Store, Obj], Any]

MAX_DEPTH = 4

# Properties Stripe only includes on request ("includable"), or computes, keyed by
# (object type, path inside the object): ("customer", "sources"), ("checkout.session",
# "total_details.breakdown"). The function gets the store and the hash that holds the property.
VIRTUAL: dict[tuple[str, str], Virtual] = {}


def virtual(object_type: str, path: str) -> Callable[[Virtual], Virtual]:
    """Register an includable or computed property of an object type."""

    def register(fn: Virtual) -> Virtual:
        VIRTUAL[(object_type, path)] = fn
        return fn

    return register


def expand(store: Store, body: Any, paths: list[str]) -> Any:
    """Apply each expansion path to a rendered response, in place; returns it."""
    for path in paths:
        parts = path.split(".")
        if len(parts) > MAX_DEPTH:
            raise invalid(
                f"You cannot expand more than {MAX_DEPTH} levels of a property. Property: {path}",
                param="expand",
            )
        _walk(store, body, parts, path, owner="", prefix="")
    return body


def _walk(store: Store, node: Any, parts: list[str], path: str, *, owner: str, prefix: str) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(store, item, parts, path, owner=owner, prefix=prefix)
        return
    if not isinstance(node, dict):
        return
    if node.get("object") == "list" and "data" in node:
        if parts[0] != "data":
            raise invalid(f"This property cannot be expanded ({path}).", param="expand")
        if parts[1:]:
            _walk(store, node["data"], parts[1:], path, owner="", prefix="")
        return
    if "object" in node:
        owner, prefix = node["object"], ""
    key, rest = parts[0], parts[1:]
    value = _resolve(store, node, key, path, owner, f"{prefix}{key}")
    if rest and value is not None:
        _walk(store, value, rest, path, owner=owner, prefix=f"{prefix}{key}.")


def _resolve(store: Store, node: Obj, key: str, path: str, owner: str, relative: str) -> Any:
    computed = VIRTUAL.get((owner, relative))
    if computed is not None and not isinstance(node.get(key), dict):
        node[key] = computed(store, node)
        return node[key]
    if key not in node:
        raise invalid(f"This property cannot be expanded ({path}).", param="expand")
    value = node[key]
    if isinstance(value, list):
        node[key] = [_object_for(store, item) for item in value]
    elif isinstance(value, str):
        node[key] = _object_for(store, value)
    elif value is not None and not isinstance(value, dict):
        raise invalid(f"This property cannot be expanded ({path}).", param="expand")
    return node[key]


def _object_for(store: Store, value: Any) -> Any:
    if isinstance(value, str):
        target = store.find(value)
        if target is not None:
            return public(target)
    return value
