"""plans/, tools/, tools/{id}/prices/ and upstream-servers/."""

from __future__ import annotations

import pytest

from billing.models import Plan, Tool, ToolPrice, UpstreamServer
from billing.services.pricing import tool_price_active
from tests.api.conftest import API, error_of
from tests.factories import PlanFactory, customer, priced_tool

pytestmark = pytest.mark.django_db


def test_plans_are_created_listed_and_changed(api):
    response = api.post(
        f"{API}plans/",
        {
            "slug": "team",
            "name": "Team",
            "billing_model": "subscription",
            "price_decimal": "4900",
            "included_calls": 10000,
            "overage": "metered",
            "daily_budget_decimal": "2500.5",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["price_decimal"], body["daily_budget_decimal"], body["currency"]) == (
        "4900",
        "2500.5",
        "usd",
    )
    plan = Plan.objects.get(slug="team")
    assert (plan.price_cents, plan.daily_budget_microcents) == (4900, 2_500_500_000)
    assert [row["slug"] for row in api.get(f"{API}plans/").json()["results"]] == ["team"]
    changed = api.patch(
        f"{API}plans/{plan.pk}/", {"included_calls": 20000, "active": False}, format="json"
    )
    assert changed.status_code == 200 and changed.json()["included_calls"] == 20000
    assert api.get(f"{API}plans/", {"active": "true"}).json()["results"] == []


def test_a_plan_that_contradicts_itself_is_refused(api):
    cases = [
        ({"billing_model": "freemium"}, "free_calls"),
        ({"billing_model": "subscription"}, "price_decimal"),
        ({"billing_model": "credits", "overage": "metered"}, "overage"),
        ({"billing_model": "credits", "price_decimal": "0.5"}, "price_decimal"),
        ({"billing_model": "credits", "upgrade_plan": "nope"}, "upgrade_plan"),
    ]
    for fields, field in cases:
        response = api.post(f"{API}plans/", {"slug": "bad", "name": "Bad", **fields}, format="json")
        assert response.status_code == 400, fields
        assert field in error_of(response)["fields"], (fields, response.json())
    PlanFactory(slug="taken")
    taken = api.post(
        f"{API}plans/", {"slug": "taken", "name": "T", "billing_model": "credits"}, format="json"
    )
    assert taken.status_code == 400 and error_of(taken)["code"] == "plan_exists"
    assert not Plan.objects.filter(slug="bad").exists()


def test_a_plans_slug_stays(api):
    plan = PlanFactory(slug="keep")
    api.patch(f"{API}plans/{plan.pk}/", {"slug": "other", "name": "Renamed"}, format="json")
    plan.refresh_from_db()
    assert (plan.slug, plan.name) == ("keep", "Renamed")


def test_tools_show_their_active_price_and_a_new_price_is_a_new_version(api):
    tool = priced_tool("calc", cents=1, credits=1)
    listed = api.get(f"{API}tools/", {"q": "cal"}).json()["results"]
    assert [row["name"] for row in listed] == ["calc"]
    assert listed[0]["price"]["version"] == 1 and listed[0]["price"]["unit_amount_decimal"] == "1"
    response = api.post(
        f"{API}tools/{tool.pk}/prices/",
        {
            "unit_amount_decimal": "0.25",
            "credits": 1,
            "tiers": [
                {"up_to": 1000, "unit_amount_decimal": "0.25", "credits": 1},
                {"up_to": None, "unit_amount_decimal": "0.1", "credits": 1},
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["version"] == 2
    assert response.json()["tiers"][1] == {
        "up_to": None,
        "unit_amount_decimal": "0.1",
        "credits": 1,
    }
    active = tool_price_active(tool=tool)
    assert (active.version, active.unit_amount_microcents) == (2, 250_000)
    assert active.tiers[1]["unit_amount_microcents"] == 100_000
    assert ToolPrice.objects.get(tool=tool, version=1).unit_amount_microcents == 1_000_000
    versions = api.get(f"{API}tools/{tool.pk}/prices/").json()["results"]
    assert [row["version"] for row in versions] == [2, 1]


def test_bad_prices_are_refused_and_write_no_version(api):
    tool = priced_tool("calc")
    for body in (
        {"unit_amount_decimal": "-1"},
        {"unit_amount_decimal": "0.0000001"},
        {"unit_amount_decimal": 1.5},
        {"unit_amount_decimal": "1", "tiers": [{"up_to": 5, "unit_amount_decimal": "1"}]},
        {"unit_amount_decimal": "1", "tiers": [{"up_to": 0, "unit_amount_decimal": "1"}]},
    ):
        response = api.post(f"{API}tools/{tool.pk}/prices/", body, format="json")
        assert response.status_code == 400, body
    assert ToolPrice.objects.filter(tool=tool).count() == 1


def test_a_tool_is_disabled_or_made_free(api):
    tool = priced_tool("calc")
    response = api.patch(
        f"{API}tools/{tool.pk}/", {"enabled": False, "timeout_s": 5}, format="json"
    )
    assert response.status_code == 200
    tool.refresh_from_db()
    assert (tool.enabled, tool.timeout_s) == (False, 5)
    assert api.patch(f"{API}tools/{tool.pk}/", {"timeout_s": 0}, format="json").status_code == 400
    assert api.post(f"{API}tools/", {"name": "x"}, format="json").status_code == 405


def test_upstream_servers_are_created_changed_and_removed(api):
    response = api.post(
        f"{API}upstream-servers/",
        {
            "name": "search",
            "transport": "http",
            "url": "https://search.example.com/mcp",
            "headers": {"Authorization": "Bearer ${UPSTREAM_SEARCH_TOKEN}"},
            "tool_prefix": "search_",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    server_id = response.json()["id"]
    changed = api.patch(f"{API}upstream-servers/{server_id}/", {"enabled": False}, format="json")
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    missing_url = api.patch(f"{API}upstream-servers/{server_id}/", {"url": ""}, format="json")
    assert missing_url.status_code == 400 and "url" in error_of(missing_url)["fields"]
    assert api.delete(f"{API}upstream-servers/{server_id}/").status_code == 204
    assert not UpstreamServer.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("headers", {"Authorization": "Bearer ${STRIPE_SECRET_KEY}"}),
        ("url", "https://collector.example/${SECRET_KEY}"),
    ],
)
def test_an_upstream_server_may_not_read_the_services_secrets(api, field, value):
    """An operator token cannot make the gateway send SECRET_KEY to a URL it chooses."""
    body = {"name": "exfil", "transport": "http", "url": "https://collector.example/mcp"}
    response = api.post(f"{API}upstream-servers/", {**body, field: value}, format="json")
    assert response.status_code == 400
    assert field in error_of(response)["fields"]
    assert "UPSTREAM_" in error_of(response)["fields"][field][0]
    assert not UpstreamServer.objects.exists()


def test_a_server_whose_tools_were_priced_is_kept(api):
    server = UpstreamServer.objects.create(name="kept", transport="http", url="http://x.test/")
    tool = Tool.objects.create(name="kept_tool", source="upstream", upstream=server)
    priced_tool(tool.name)
    response = api.delete(f"{API}upstream-servers/{server.pk}/")
    assert response.status_code == 409 and error_of(response)["code"] == "in_use"
    assert UpstreamServer.objects.filter(pk=server.pk).exists()


def test_stdio_servers_run_only_the_commands_the_deployment_allows(api, settings):
    body = {"name": "local", "transport": "stdio", "command": "sh", "args": ["-c", "id"]}
    response = api.post(f"{API}upstream-servers/", body, format="json")
    assert response.status_code == 400 and "command" in error_of(response)["fields"]
    settings.MCP_UPSTREAM_STDIO_COMMANDS = ["python3"]
    assert api.post(f"{API}upstream-servers/", body, format="json").status_code == 400
    body["command"] = "python3"
    assert api.post(f"{API}upstream-servers/", body, format="json").status_code == 201


def test_refreshing_an_unreachable_server_is_a_424(api):
    server = UpstreamServer.objects.create(
        name="gone", transport="http", url="http://127.0.0.1:9/mcp", timeout_s=2
    )
    response = api.post(f"{API}upstream-servers/{server.pk}/refresh/")
    assert response.status_code == 424
    assert error_of(response)["code"] == "upstream_unreachable"


def test_a_view_only_operator_cannot_change_the_catalogue(viewer):
    tool = priced_tool("calc")
    plan = PlanFactory()
    assert viewer.get(f"{API}tools/").status_code == 200
    for response in (
        viewer.post(f"{API}tools/{tool.pk}/prices/", {"unit_amount_decimal": "2"}, format="json"),
        viewer.patch(f"{API}tools/{tool.pk}/", {"enabled": False}, format="json"),
        viewer.patch(f"{API}plans/{plan.pk}/", {"name": "x"}, format="json"),
        viewer.post(f"{API}plans/", {"slug": "x", "name": "x", "billing_model": "credits"}),
        viewer.post(
            f"{API}upstream-servers/", {"name": "x", "transport": "http", "url": "http://a.b/"}
        ),
    ):
        assert response.status_code == 403
    assert customer() and ToolPrice.objects.filter(tool=tool).count() == 1


@pytest.mark.django_db(transaction=True)
def test_refreshing_a_server_lists_its_tools_unpriced(api):
    from tests.gateway.support import serving
    from tests.gateway.upstreams import upstream_http_app

    with serving(upstream_http_app()) as url:
        server = UpstreamServer.objects.create(
            name="text", transport="http", url=f"{url}/mcp", tool_prefix="text_"
        )
        response = api.post(f"{API}upstream-servers/{server.pk}/refresh/")
    assert response.status_code == 200, response.json()
    names = [row["name"] for row in response.json()]
    assert "text_shout" in names and all(row["price"] is None for row in response.json())
    assert Tool.objects.filter(upstream=server).count() == len(names)


def test_header_and_environment_names_are_checked(api):
    for field, name in (("headers", "Bad Header"), ("env", "1BAD")):
        response = api.post(
            f"{API}upstream-servers/",
            {"name": "n", "transport": "http", "url": "http://a.test/", field: {name: "v"}},
            format="json",
        )
        assert response.status_code == 400 and field in error_of(response)["fields"]
