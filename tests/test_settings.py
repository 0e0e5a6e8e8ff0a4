"""Production refuses to start without its secrets; development needs none."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

SETUP = "import django; django.setup(); print('started')"
SECRETS = {
    "SECRET_KEY": "x" * 50,
    "ALLOWED_HOSTS": "billing.example.com",
    "STRIPE_SECRET_KEY": "sk_live_" + "a" * 24,
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
}


def start(env_overrides: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "DJANGO_ENV"}
    env.update(env_overrides, DJANGO_SETTINGS_MODULE="mcpbilling.settings")
    return subprocess.run(
        [sys.executable, "-c", SETUP],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_production_refuses_to_start_without_a_secret(missing):
    env = {"DJANGO_ENV": "production", **SECRETS}
    del env[missing]
    result = start(env)
    assert result.returncode != 0
    assert f"Set the {missing} environment variable" in result.stderr


def test_production_starts_with_its_secrets():
    result = start({"DJANGO_ENV": "production", **SECRETS})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


def test_development_needs_nothing():
    result = start({})
    assert result.returncode == 0, result.stderr
