"""What a handler works with: the store, the request it serves, events, and the route table."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import objects
from .errors import invalid
from .forms import Params
from .lists import all_of, field_filter, paginate, range_filter
from .store import Store, public

Obj = dict[str, Any]
Handler = Callable[..., Any]

# The API version stripe-python 15 speaks; events carry it (tests check it against the library).
API_VERSION = "2026-08-26.dahlia"

METADATA_MAX_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500


@dataclass
class Ctx:
    """One request (or page action, or helper call) against the store."""

    store: Store
    url_base: str
    request_id: str | None = None
    idempotency_key: str | None = None

    def emit(self, type_: str, obj: Obj, previous: Obj | None = None) -> Obj:
        """Record an event with a snapshot of ``obj`` and hand it to the webhook dispatcher."""
        request = {"id": self.request_id, "idempotency_key": self.idempotency_key}
        evt = objects.event(
            self.store,
            type_=type_,
            data_object=public(obj),
            previous=previous,
            request=request,
            api_version=API_VERSION,
        )
        with self.store.lock:
            self.store.put(evt)
            self.store.notify(evt)
        return evt

    @contextmanager
    def changes(self, obj: Obj, type_: str) -> Iterator[Obj]:
        """Apply changes to ``obj``, then emit ``type_`` with what changed; undo them on error."""
        backup = copy.deepcopy(obj)
        before = public(obj)
        try:
            yield obj
        except BaseException:
            obj.clear()
            obj.update(backup)
            raise
        previous = diff(before, public(obj))
        if previous:
            self.store.mark_dirty()
            self.emit(type_, obj, previous)


def diff(before: Obj, after: Obj) -> Obj:
    """Stripe's ``previous_attributes``: the old values of what changed, nested for hashes."""
    previous: Obj = {}
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and old.get("object") != "list":
            previous[key] = diff(old, new)
        else:
            previous[key] = copy.deepcopy(old)
    return previous


def apply_metadata(obj: Obj, params: Params) -> None:
    """Stripe's metadata update: keys merge, an empty value removes one, ``metadata=`` clears."""
    if not params.has("metadata"):
        return
    value = params.raw("metadata")
    if value == "":
        obj["metadata"] = {}
        return
    if isinstance(value, list):  # all-numeric keys were read as an array
        value = {str(index): item for index, item in enumerate(value)}
    if not isinstance(value, dict):
        raise invalid("Invalid metadata: must be a hash.", param="metadata")
    merged = dict(obj.get("metadata") or {})
    for key, item in value.items():
        _check_metadata_entry(key, item)
        if item == "":
            merged.pop(key, None)
        else:
            merged[key] = item
    if len(merged) > METADATA_MAX_KEYS:
        raise invalid(
            f"Invalid metadata: metadata can have up to {METADATA_MAX_KEYS} keys.", param="metadata"
        )
    obj["metadata"] = merged


def metadata_of(params: Params) -> dict[str, str]:
    """The ``metadata`` hash of new object's parameters, validated."""
    holder: Obj = {"metadata": {}}
    apply_metadata(holder, params)
    return holder["metadata"]


def _check_metadata_entry(key: str, value: Any) -> None:
    if not isinstance(value, str):
        raise invalid(
            f"Invalid value for metadata[{key}]: must be a string.", param=f"metadata[{key}]"
        )
    if len(key) > METADATA_KEY_MAX:
        raise invalid(
            f"Invalid metadata: keys can be at most {METADATA_KEY_MAX} characters.",
            param=f"metadata[{key}]",
        )
    if len(value) > METADATA_VALUE_MAX:
        raise invalid(
            f"Invalid metadata: values can be at most {METADATA_VALUE_MAX} characters.",
            param=f"metadata[{key}]",
        )


def set_strings(obj: Obj, params: Params, names: tuple[str, ...]) -> None:
    """Copy the string parameters that were sent; an empty value unsets the field."""
    for name in names:
        if params.has(name):
            obj[name] = params.str(name)


def currency(params: Params, key: str = "currency", *, required: bool = True) -> str | None:
    """A three-letter currency code, lower-cased."""
    value = params.str(key, required=required)
    if value is None:
        return None
    if len(value) != 3 or not value.isalpha():
        raise invalid(f"Invalid currency: {value}", param=params.name(key))
    return value.lower()


class RouteTable:
    """The API routes a resource module serves: ``@routes.post("/v1/customers")``."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, Handler]] = []

    def add(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """Register ``handler(ctx, params, **path_params)`` for a method and a path."""

        def register(handler: Handler) -> Handler:
            self.entries.append((method, path, handler))
            return handler

        return register

    def get(self, path: str) -> Callable[[Handler], Handler]:
        """Register a GET handler."""
        return self.add("GET", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        """Register a POST handler."""
        return self.add("POST", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        """Register a DELETE handler."""
        return self.add("DELETE", path)

    def retrieve(self, path: str, kind: str) -> None:
        """``GET path``: the object of ``kind`` that the path's one parameter names."""

        def handler(ctx: Ctx, params: Params, **ids: str) -> Obj:
            (object_id,) = ids.values()
            return ctx.store.require(kind, object_id)

        self._generated("GET", path, handler, "retrieve", kind)

    def listing(self, path: str, kind: str, *fields: str) -> None:
        """``GET path``: objects of ``kind``, newest first, by ``fields`` and ``created``."""

        def handler(ctx: Ctx, params: Params) -> Obj:
            where = all_of(field_filter(params, *fields), range_filter(params))
            return paginate(ctx.store.all(kind, where), params, path)

        self._generated("GET", path, handler, "list", kind)

    def updating(self, path: str, kind: str, *strings: str) -> None:
        """``POST path``: update ``strings`` and metadata, emitting ``<kind>.updated``."""

        def handler(ctx: Ctx, params: Params, **ids: str) -> Obj:
            (object_id,) = ids.values()
            obj = ctx.store.require(kind, object_id)
            with ctx.changes(obj, f"{kind}.updated"):
                set_strings(obj, params, strings)
                apply_metadata(obj, params)
            return obj

        self._generated("POST", path, handler, "update", kind)

    def _generated(self, method: str, path: str, handler: Handler, action: str, kind: str) -> None:
        handler.__name__ = f"{kind.replace('.', '_')}_{action}"
        self.entries.append((method, path, handler))


@dataclass
class Reply:
    """A handler's answer when it is not a plain 200 with a Stripe object."""

    status: int
    body: Any
