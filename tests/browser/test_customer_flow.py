"""A new customer's whole way, in real Chromium: from the pricing page to a billed call.

sign up -> open the mailed link -> sign in -> create a key -> see its secret once ->
call /mcp with the official client -> the call on /usage/ with its cost, the dashboard's
free calls left down by one -> the connect page's test call -> buy credits on the
emulator's Checkout -> the payment on /billing/invoices/ -> a paid call in credits ->
revoke the key -> the next call gets 401. Every page is photographed at desktop and
phone widths on the way; no page answers 500 and no script fails.
"""

from __future__ import annotations

import re

import httpx
import pytest
from django.core import mail

from tests.browser.support import Watched, in_thread
from tests.gateway.support import call

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "ada@example.com"
PASSWORD = "a-long-pass-phrase-7"


def _receipt(result) -> dict:
    assert not result.is_error, result
    return result.meta["mcpbilling/receipt"]


def _mcp_call(site: str, key: str, expression: str = "6 * 7"):
    return in_thread(lambda: call(site, key, "calculate", {"expression": expression}))


def _stat(page, stat_id: str) -> str:
    return page.locator(f"#{stat_id}").inner_text().strip()


def test_from_pricing_to_a_billed_call_and_back_to_401(chromium, site, shots, emulator):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.on("dialog", lambda dialog: dialog.accept())  # the revoke button asks first
    page = context.new_page()
    watched = Watched(page)

    # The public pricing page: plans and every tool with its price.
    page.goto(f"{site}/")
    assert page.get_by_role("heading", name="Plans").is_visible()
    assert page.locator("code", has_text="calculate").first.is_visible()
    shots.take(page, "pricing")

    # Sign up: a bad form first (errors beside the fields), then the real one.
    page.get_by_role("link", name="Start free").first.click()
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_label("Password (again)").fill("other")
    page.get_by_role("button", name="Sign Up").click()
    assert page.locator("#id_email.is-invalid").is_visible()
    assert page.locator("#id_email_error").inner_text().strip() == "Enter a valid email address."
    shots.take(page, "signup-errors")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password (again)").fill(PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    page.wait_for_url(re.compile(r"/accounts/confirm-email/$"))
    shots.take(page, "verification-sent")

    # The mailed link, opened on another device: it confirms, then asks to sign in.
    link = re.search(r"(http://\S+/accounts/confirm-email/\S+/)", mail.outbox[-1].body).group(1)
    phone = chromium.new_context(viewport={"width": 390, "height": 844})
    other = phone.new_page()
    other.goto(link)
    shots.take(other, "confirm-email")
    other.get_by_role("button", name="Confirm").click()
    other.wait_for_url(re.compile(r"/accounts/login/"))
    phone.close()

    # Sign in.
    page.goto(f"{site}/accounts/login/")
    shots.take(page, "sign-in")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(f"{site}/dashboard/")
    assert _stat(page, "dash-free-left") == "100"
    shots.take(page, "dashboard-new")

    # A key: the name is required (error beside it), then the secret is shown once.
    page.get_by_role("link", name="API keys").click()
    page.get_by_role("button", name="Create key").click()
    assert page.locator("#id_name.is-invalid").is_visible()
    page.get_by_label("Name").fill("my agent")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-secret").input_value()
    assert secret.startswith("mcpb_")
    shots.take(page, "keys-new-secret")
    page.goto(f"{site}/keys/")
    assert secret not in page.content()
    assert page.locator("tbody tr").count() == 1

    # The official MCP client calls a tool with the key: a free-tier call.
    receipt = _receipt(_mcp_call(site, secret))
    page.goto(f"{site}/usage/")
    row = page.locator("tbody tr").first
    assert "calculate" in row.inner_text() and "Free tier" in row.inner_text()
    assert receipt["usage_id"][:8] in row.inner_text()
    shots.take(page, "usage")
    row.get_by_role("link").last.click()
    assert receipt["usage_id"] in page.content()
    shots.take(page, "usage-receipt")
    page.goto(f"{site}/dashboard/")
    assert _stat(page, "dash-free-left") == "99"

    # The connect page: set-ups filled with the key, and a test call through /mcp.
    page.get_by_role("link", name="Connect", exact=True).first.click()
    assert page.locator("#connect-key").input_value() == secret  # kept in this tab
    assert secret in page.locator("#code-python").inner_text()
    page.get_by_role("button", name="Send a test call").click()
    result = page.locator("#test-call-result .alert-success")
    result.wait_for(timeout=15_000)
    assert "date_calc" in result.inner_text() and "$0.00" in result.inner_text()
    shots.take(page, "connect")

    # Buy credits through the emulator's Checkout; the webhook grants them.
    page.goto(f"{site}/billing/credits/")
    shots.take(page, "credits-before")
    page.get_by_role("button", name=re.compile(r"^Buy Starter")).click()
    page.wait_for_url(re.compile(re.escape(emulator.url) + r"/c/pay/"))
    page.fill("#card_number", "4242 4242 4242 4242")
    page.fill("#exp", "12 / 34")
    page.fill("#cvc", "123")
    page.fill("#name", "Ada Lovelace")
    page.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/billing/credits/\?return=success"))
    emulator.wait_idle(timeout=30)
    page.reload()
    assert _stat(page, "available-credits") == "500"
    shots.take(page, "credits")

    # The payment is on the invoices page, with its Stripe receipt.
    page.get_by_role("button", name="Billing").click()
    page.get_by_role("link", name="Invoices and receipts").click()
    row = page.locator("tbody tr").first
    assert "Starter credit pack" in row.inner_text() and "$5.00" in row.inner_text()
    shots.take(page, "invoices")
    with context.expect_page() as receipt_tab:
        row.get_by_role("link", name=re.compile("Receipt")).click()
    assert "Receipt from" in receipt_tab.value.content()
    receipt_tab.value.close()

    # On the credits plan the next call costs a credit.
    page.goto(f"{site}/billing/plans/")
    shots.take(page, "plans")
    page.locator("#plan-credits").get_by_role("button").click()
    assert "Your plan has been changed" in page.content()
    paid = _receipt(_mcp_call(site, secret, "2 ** 10"))
    assert (paid["credits"], paid["balance"]) == (1, 499)
    page.goto(f"{site}/dashboard/")
    assert _stat(page, "dash-credits") == "499"
    shots.take(page, "dashboard")
    page.goto(f"{site}/usage/")
    assert "1 credit" in page.locator("tbody tr").first.inner_text()

    page.goto(f"{site}/billing/payment-method/")
    shots.take(page, "payment-method")
    page.goto(f"{site}/accounts/password/change/")
    shots.take(page, "password-change")

    # Revoke the key: the next call is refused with 401.
    page.goto(f"{site}/keys/")
    page.get_by_role("button", name="Revoke my agent").click()
    assert "is revoked" in page.content()
    shots.take(page, "keys")
    refused = httpx.post(
        f"{site}/mcp",
        headers={
            "Authorization": f"Bearer {secret}",
            "Accept": "application/json, text/event-stream",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")

    # A missing page is in the layout too; sign-out returns to the site.
    page.goto(f"{site}/no-such-page/")
    assert "This page does not exist" in page.content()
    shots.take(page, "not-found")
    page.get_by_role("button", name=EMAIL).click()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{site}/")
    assert page.get_by_role("link", name="Sign in").first.is_visible()

    watched.assert_clean()
    context.close()
