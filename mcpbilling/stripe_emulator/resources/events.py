"""Webhook endpoints and events."""

from __future__ import annotations

import re
from typing import Any

from .. import objects
from ..context import API_VERSION, Ctx, RouteTable, apply_metadata, set_strings
from ..errors import invalid
from ..forms import Params
from ..lists import all_of, paginate, range_filter

Obj = dict[str, Any]
routes = RouteTable()

_EVENT_TYPE = re.compile(r"^(\*|[a-z0-9_]+(\.[a-z0-9_]+)+)$")


def _url(params: Params, *, required: bool) -> str | None:
    url = params.str("url", required=required)
    if url is not None and not url.startswith(("http://", "https://")):
        raise invalid(f"Invalid URL: {url}", param="url", code="url_invalid")
    return url


def _enabled_events(params: Params) -> list[str]:
    events = params.strings("enabled_events")
    if not events:
        raise invalid(
            "Missing required param: enabled_events.",
            param="enabled_events",
            code="parameter_missing",
        )
    for event_type in events:
        if not _EVENT_TYPE.match(event_type):
            raise invalid(f"Invalid event type: {event_type}", param="enabled_events")
    return events


def subscribed(endpoint: Obj, event_type: str) -> bool:
    """Whether an enabled endpoint receives events of this type."""
    wanted = endpoint["enabled_events"]
    return endpoint["status"] == "enabled" and ("*" in wanted or event_type in wanted)


@routes.post("/v1/webhook_endpoints")
def endpoint_create(ctx: Ctx, params: Params) -> Obj:
    """Create an endpoint; only this response carries its signing ``secret``."""
    endpoint = objects.webhook_endpoint(
        ctx.store, url=_url(params, required=True), enabled_events=_enabled_events(params)
    )
    set_strings(endpoint, params, ("description",))
    if params.has("api_version"):
        endpoint["api_version"] = params.str("api_version") or API_VERSION
    apply_metadata(endpoint, params)
    ctx.store.put(endpoint)
    return {**endpoint, "secret": endpoint["_secret"]}


routes.retrieve("/v1/webhook_endpoints/{endpoint_id}", "webhook_endpoint")


@routes.post("/v1/webhook_endpoints/{endpoint_id}")
def endpoint_update(ctx: Ctx, params: Params, endpoint_id: str) -> Obj:
    """Update the URL, events, description, metadata, or disable it."""
    endpoint = ctx.store.require("webhook_endpoint", endpoint_id)
    changed = dict(endpoint)
    if params.has("url"):
        changed["url"] = _url(params, required=True)
    if params.has("enabled_events"):
        changed["enabled_events"] = _enabled_events(params)
    if params.has("disabled"):
        changed["status"] = "disabled" if params.bool("disabled") else "enabled"
    set_strings(changed, params, ("description",))
    apply_metadata(changed, params)
    endpoint.update(changed)
    ctx.store.mark_dirty()
    return endpoint


@routes.delete("/v1/webhook_endpoints/{endpoint_id}")
def endpoint_delete(ctx: Ctx, params: Params, endpoint_id: str) -> Obj:
    """Delete an endpoint; nothing more is delivered to it."""
    ctx.store.require("webhook_endpoint", endpoint_id)
    ctx.store.delete("webhook_endpoint", endpoint_id)
    return {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}


routes.listing("/v1/webhook_endpoints", "webhook_endpoint")
routes.retrieve("/v1/events/{event_id}", "event")


@routes.get("/v1/events")
def event_list(ctx: Ctx, params: Params) -> Obj:
    """Events by ``type`` (``*`` wildcards allowed), ``types[]`` and ``created``."""
    pattern = params.str("type")
    types = set(params.strings("types"))
    where = all_of(
        range_filter(params),
        lambda evt: pattern is None or _type_matches(pattern, evt["type"]),
        lambda evt: not types or evt["type"] in types,
    )
    return paginate(ctx.store.all("event", where), params, "/v1/events")


def _type_matches(pattern: str, event_type: str) -> bool:
    regex = "^" + re.escape(pattern).replace(r"\*", "[^.]+(\\.[^.]+)*") + "$"
    return re.match(regex, event_type) is not None
