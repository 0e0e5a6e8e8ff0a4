"""What an operator sells, as they edit it: plans, tools, upstream MCP servers.

Prices are versions (``pricing.tool_price_set``); the Stripe side of a plan
follows with ``stripe_catalog.plan_stripe_sync``.
"""

from __future__ import annotations

import re
import shutil
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError

from billing.models import BillingModel, Plan, Tool, UpstreamServer
from mcpbilling.errors import ApplicationError

# "${NAME}" in an upstream server's URL, headers, command, arguments or environment is
# read from the environment when the gateway connects; only names with the prefix
# MCP_UPSTREAM_ENV_PREFIX may be read, so no row (an API caller's included) can make the
# gateway send SECRET_KEY or STRIPE_SECRET_KEY to a server of its choosing.
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def env_reference_allowed(name: str) -> bool:
    """Whether an upstream server's configuration may read environment variable ``name``."""
    prefix = settings.MCP_UPSTREAM_ENV_PREFIX
    return bool(prefix) and name.startswith(prefix)


def _env_references_refused(server: UpstreamServer) -> dict[str, str]:
    """The fields naming environment variables they may not read, with what to do."""
    fields = {
        "url": [server.url],
        "command": [server.command],
        "args": [str(arg) for arg in server.args],
        "headers": [str(value) for value in server.headers.values()],
        "env": [str(value) for value in server.env.values()],
    }
    problems = {}
    for field, values in fields.items():
        names = sorted(
            {name for value in values for name in ENV_REFERENCE.findall(value or "")}
            - {
                name
                for value in values
                for name in ENV_REFERENCE.findall(value or "")
                if env_reference_allowed(name)
            }
        )
        if names:
            problems[field] = (
                f"Only environment variables starting with {settings.MCP_UPSTREAM_ENV_PREFIX!r} "
                f"may be read here, not {', '.join(names)}."
            )
    return problems


PLAN_FIELDS = {
    f.name
    for f in Plan._meta.concrete_fields
    if f.name not in {"id", "created_at", "updated_at", "stripe_price_id"}
}


def plan_check(plan: Plan) -> None:
    """Refuse a plan whose settings contradict each other or its billing model."""
    problems: dict[str, str] = {}
    if plan.billing_model == BillingModel.FREEMIUM and not plan.free_calls:
        problems["free_calls"] = "A freemium plan gives some free calls per period."
    if (
        plan.billing_model == BillingModel.FREEMIUM
        and plan.free_tier_action == Plan.FreeTierAction.UPGRADE
        and plan.upgrade_plan_id is None
    ):
        problems["upgrade_plan"] = "Moving customers up needs the plan to move them to."
    if plan.upgrade_plan_id is not None and plan.upgrade_plan_id == plan.pk:
        problems["upgrade_plan"] = "A plan cannot upgrade to itself."
    if (plan.auto_topup_threshold_credits is None) != (plan.auto_topup_pack_id is None):
        problems["auto_topup_pack"] = "An automatic top-up needs both a threshold and a pack."
    if plan.billing_model == BillingModel.SUBSCRIPTION and plan.price_cents is None:
        problems["price_decimal"] = "A subscription plan has a price per period."
    if plan.overage == Plan.Overage.METERED and plan.billing_model != BillingModel.SUBSCRIPTION:
        problems["overage"] = "Metered overage applies to subscription plans."
    if len(plan.currency) != 3 or not plan.currency.isalpha():
        problems["currency"] = "A three-letter ISO currency code, e.g. usd."
    if problems:
        raise ApplicationError(
            "plan_invalid",
            " ".join(problems.values()),
            fields={k: [v] for k, v in problems.items()},
        )


@transaction.atomic
def plan_create(**fields: Any) -> Plan:
    """A new plan (not sold at Stripe until its catalogue is synced)."""
    unknown = set(fields) - PLAN_FIELDS
    if unknown:
        raise ValueError(f"plan_create does not take {sorted(unknown)}")
    if Plan.objects.filter(slug=fields.get("slug")).exists():
        raise ApplicationError("plan_exists", f"A plan {fields.get('slug')!r} exists.")
    plan = Plan(**{"currency": settings.BILLING_DEFAULT_CURRENCY, **fields})
    plan.currency = plan.currency.lower()
    plan_check(plan)
    plan.save()
    return plan


@transaction.atomic
def plan_update(*, plan: Plan, **changes: Any) -> Plan:
    """Change a plan's settings; customers on it are billed by them from their next call."""
    unknown = set(changes) - (PLAN_FIELDS - {"slug"})
    if unknown:
        raise ValueError(f"plan_update cannot change {sorted(unknown)}")
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    for name, value in changes.items():
        setattr(plan, name, value)
    plan.currency = plan.currency.lower()
    plan_check(plan)
    plan.save()
    return plan


TOOL_FIELDS = {"title", "description", "enabled", "is_free", "timeout_s"}


@transaction.atomic
def tool_update(*, tool: Tool, **changes: Any) -> Tool:
    """Change how a tool is offered (its name, schema and source come from its code or server)."""
    unknown = set(changes) - TOOL_FIELDS
    if unknown:
        raise ValueError(f"tool_update cannot change {sorted(unknown)}")
    tool = Tool.objects.select_for_update().get(pk=tool.pk)
    for name, value in changes.items():
        setattr(tool, name, value)
    tool.save(update_fields=list(changes))
    return tool


UPSTREAM_FIELDS = {
    f.name
    for f in UpstreamServer._meta.concrete_fields
    if f.name not in {"id", "created_at", "updated_at"}
}


def upstream_server_check(server: UpstreamServer) -> None:
    """Refuse a server the gateway could not reach, or a command it may not start.

    A stdio server runs a command on this machine, so the API accepts only the
    commands the deployment lists in ``MCP_UPSTREAM_STDIO_COMMANDS``; any field may
    read only the environment variables ``env_reference_allowed``.
    """
    problems = _env_references_refused(server)
    if server.transport == UpstreamServer.Transport.HTTP:
        if not server.url:
            problems["url"] = "A Streamable HTTP server needs its URL."
    else:
        allowed = settings.MCP_UPSTREAM_STDIO_COMMANDS
        if not server.command:
            problems["command"] = "A stdio server needs the command that starts it."
        elif server.command not in allowed:
            problems["command"] = (
                f"{server.command!r} is not one of MCP_UPSTREAM_STDIO_COMMANDS "
                f"({', '.join(allowed) or 'none: stdio servers are set up in the admin'})."
            )
        elif shutil.which(server.command) is None:
            problems["command"] = f"{server.command!r} is not found on this machine."
    if problems:
        raise ApplicationError(
            "upstream_invalid",
            " ".join(problems.values()),
            fields={k: [v] for k, v in problems.items()},
        )


@transaction.atomic
def upstream_server_create(**fields: Any) -> UpstreamServer:
    """Register an upstream MCP server (its tools appear once it is refreshed)."""
    unknown = set(fields) - UPSTREAM_FIELDS
    if unknown:
        raise ValueError(f"upstream_server_create does not take {sorted(unknown)}")
    if UpstreamServer.objects.filter(name=fields.get("name")).exists():
        raise ApplicationError("upstream_exists", f"An upstream server {fields['name']!r} exists.")
    server = UpstreamServer(**fields)
    upstream_server_check(server)
    server.save()
    return server


@transaction.atomic
def upstream_server_update(*, server: UpstreamServer, **changes: Any) -> UpstreamServer:
    """Change an upstream server; a new name or prefix applies at its next refresh."""
    unknown = set(changes) - UPSTREAM_FIELDS
    if unknown:
        raise ValueError(f"upstream_server_update cannot change {sorted(unknown)}")
    server = UpstreamServer.objects.select_for_update().get(pk=server.pk)
    if (
        "name" in changes
        and UpstreamServer.objects.filter(name=changes["name"]).exclude(pk=server.pk).exists()
    ):
        raise ApplicationError("upstream_exists", f"An upstream server {changes['name']!r} exists.")
    for name, value in changes.items():
        setattr(server, name, value)
    upstream_server_check(server)
    server.save()
    return server


@transaction.atomic
def upstream_server_delete(*, server: UpstreamServer) -> None:
    """Remove a server and its tools; refused once any of them was priced or called."""
    try:
        Tool.objects.filter(upstream=server).delete()
        server.delete()
    except ProtectedError as exc:
        raise ApplicationError(
            "in_use",
            "Tools of this server have prices or usage, which are kept: disable the server "
            "instead (enabled: false).",
        ) from exc
