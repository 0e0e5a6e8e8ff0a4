"""The set-ups /connect/ shows are ready to paste: the Python one and curl run as shown."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys

import pytest
from django.test import Client

from billing.models import BillingModel
from billing.services.ledger import credit_grant
from tests.factories import PlanFactory, api_key, signed_in_customer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pasted(site, settings):
    """The connect page's code blocks (by id), as served for a customer with credits."""
    settings.SITE_URL = site
    browser = Client()
    owner = signed_in_customer(
        browser, "ada@example.com", plan=PlanFactory(billing_model=BillingModel.CREDITS)
    )
    credit_grant(customer_id=owner.pk, credits=10, idempotency_key="seed")
    page = browser.get("/connect/").content.decode()
    blocks = re.findall(r'<code id="code-([\w-]+)" data-language="[\w]+">(.*?)</code>', page, re.S)
    secret = api_key(owner).secret
    return {name: html.unescape(code).replace("mcpb_YOUR_API_KEY", secret) for name, code in blocks}


def test_the_python_set_up_calls_a_tool_and_prints_the_receipt(pasted):
    finished = subprocess.run(
        [sys.executable, "-c", pasted["python"]], capture_output=True, text=True, timeout=60
    )

    assert finished.returncode == 0, finished.stderr
    assert "tools: [" in finished.stdout and "'calculate'" in finished.stdout
    assert "14" in finished.stdout  # 2 * (3 + 4)
    receipt = finished.stdout.split("receipt: ", 1)[1]
    assert "'credits': 1" in receipt and "'balance': 9" in receipt


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_set_up_calls_a_tool(pasted):
    finished = subprocess.run(
        ["bash", "-c", pasted["curl"]], capture_output=True, text=True, timeout=60
    )

    assert finished.returncode == 0, finished.stderr
    answer = json.loads(finished.stdout)
    assert answer["result"]["structuredContent"]["result"] == 14
    assert answer["result"]["_meta"]["mcpbilling/receipt"]["credits"] == 1


def test_the_host_configs_are_valid_json_with_the_key(pasted, site):
    for name in ("mcp-json", "vscode"):
        config = json.loads(pasted[name])
        server = next(iter((config.get("mcpServers") or config["servers"]).values()))
        assert server["url"] == f"{site}/mcp"
        assert server["headers"]["Authorization"].startswith("Bearer mcpb_")
