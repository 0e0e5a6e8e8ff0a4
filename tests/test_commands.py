"""The contract's management commands."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from billing.models import CreditAccount, CreditPack, Plan, Tool
from customers.models import ApiKey, Customer
from customers.services import api_key_matches, api_key_prefix_of

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def printed_key(output: str) -> str:
    match = re.search(r"^api_key=(mcpb_\S+)$", output, re.M)
    assert match, output
    return match.group(1)


def key_works(raw: str) -> bool:
    key = ApiKey.objects.get(prefix=api_key_prefix_of(raw))
    return key.revoked_at is None and api_key_matches(key, raw)


def test_seed_demo_is_idempotent_and_its_key_keeps_working(settings, tmp_path):
    settings.RUN_DIR = tmp_path
    first = printed_key(run("seed_demo"))
    counts = [m.objects.count() for m in (Plan, CreditPack, Tool, Customer, ApiKey)]
    second = printed_key(run("seed_demo"))
    assert [m.objects.count() for m in (Plan, CreditPack, Tool, Customer, ApiKey)] == counts
    assert first == second and key_works(second)
    assert set(Plan.objects.values_list("slug", flat=True)) >= {
        "free",
        "credits",
        "payg",
        "pro",
        "metered",
    }
    assert {p.billing_model for p in Plan.objects.all()} == {
        "freemium",
        "credits",
        "per_call",
        "subscription",
        "usage",
    }
    assert all(p.rate_limit_per_minute >= 600 for p in Plan.objects.all())
    assert Tool.objects.get(name="calculate").prices.get().credits == 1
    demo = Customer.objects.get(email="demo@example.com")
    assert CreditAccount.objects.get(customer=demo).balance_credits == 1000


def test_seed_demo_prints_the_customer_login_once_in_debug(settings, tmp_path, client):
    settings.RUN_DIR, settings.DEBUG = tmp_path, True
    first = run("seed_demo")
    match = re.search(r"^customer login: demo@example.com / (\S+) ", first, re.M)
    assert match, first
    assert "customer login" not in run("seed_demo")

    signed_in = client.post(
        "/accounts/login/", {"login": "demo@example.com", "password": match.group(1)}
    )
    assert signed_in.status_code == 302 and signed_in["Location"] == "/dashboard/"
    page = client.get("/billing/credits/")
    assert page.status_code == 200
    assert re.search(rb'id="available-credits">\s*1,000\s*<', page.content)


def test_seed_demo_issues_a_new_key_when_the_saved_one_was_revoked(settings, tmp_path):
    settings.RUN_DIR = tmp_path
    first = printed_key(run("seed_demo"))
    ApiKey.objects.filter(prefix=api_key_prefix_of(first)).update(revoked_at="2026-01-01T00:00Z")
    second = printed_key(run("seed_demo"))
    assert second != first and key_works(second)


def test_customer_create_prints_a_working_key_and_grants_credits(settings, tmp_path):
    settings.RUN_DIR = tmp_path
    run("seed_demo")
    output = run(
        "customer_create", "--email", "new@example.com", "--plan", "credits", "--credits", "25"
    )
    assert key_works(printed_key(output))
    customer = Customer.objects.get(email="new@example.com")
    assert customer.plan.slug == "credits"
    assert CreditAccount.objects.get(customer=customer).balance_credits == 25


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "x@example.com", "--plan", "nope"], "No plan 'nope'"),
        (["--email", "x@example.com", "--credits", "-1"], "--credits must be 0 or more"),
        (["--email", "demo@example.com"], "exists"),
    ],
)
def test_customer_create_refuses_bad_input_and_changes_nothing(settings, tmp_path, args, message):
    settings.RUN_DIR = tmp_path
    run("seed_demo")
    before = Customer.objects.count()
    with pytest.raises(CommandError, match=message):
        run("customer_create", *args)
    assert Customer.objects.count() == before


def test_operator_token_creates_a_staff_user_once():
    token = run("operator_token", "ops").strip()
    assert run("operator_token", "ops").strip() == token
    stored = Token.objects.get(key=token)
    assert stored.user.username == "ops" and stored.user.is_staff
    assert stored.user.has_perm("billing.add_ledgerentry")
    assert stored.user.has_perm("customers.delete_customer")


def test_operator_token_view_only_reads_and_cannot_write():
    token = run("operator_token", "auditor", "--view-only").strip()
    user = Token.objects.get(key=token).user
    assert user.has_perm("billing.view_usagerecord") and user.has_perm("djstripe.view_invoice")
    assert not user.has_perm("billing.add_ledgerentry")
    assert not user.has_perm("customers.change_customer")
