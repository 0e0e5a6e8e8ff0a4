"""The wheel is the product: installed in a fresh virtualenv, it runs without the source tree."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHECK = """
import django, mcpbilling, webhooks
from django.template.loader import get_template
django.setup()
assert mcpbilling.__file__.startswith(PREFIX), mcpbilling.__file__
for name in ("base.html", "billing/credits.html", "admin/customers/grant_credits.html"):
    get_template(name)
import webhooks.apis, mcpbilling.api.urls
from django.contrib.staticfiles import finders
assert finders.find("css/site.css"), "static files missing"
print("templates and apps from", mcpbilling.__file__)
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel built from this tree; its dependencies are this
    test run's (a .pth line, which runs none of their .pth files: not the editable install)."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(work / "dist"),
            str(ROOT),
        ],
        check=True,
        cwd=work,
    )
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    wheel = next((work / "dist").glob("mcpbilling-*.whl"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            purelib,
            str(wheel),
        ],
        check=True,
    )
    ours = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (Path(purelib) / "project_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    shutil.copy(ROOT / "manage.py", work / "manage.py")
    return work


def _run(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "mcpbilling.settings",
    }
    return subprocess.run(
        [str(work / "venv" / "bin" / "python"), *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_installed_wheel_passes_the_system_checks(installed):
    checked = _run(installed, "manage.py", "check")
    assert checked.returncode == 0, checked.stderr
    assert "no issues" in checked.stdout, checked.stdout + checked.stderr
    migrations = _run(installed, "manage.py", "makemigrations", "--check", "--dry-run")
    assert migrations.returncode == 0, migrations.stdout + migrations.stderr


def test_the_installed_wheel_has_every_app_and_the_templates(installed):
    prefix = str(installed / "venv")
    loaded = _run(installed, "-c", f"PREFIX = {prefix!r}\n{CHECK}")
    assert loaded.returncode == 0, loaded.stderr
    assert "templates and apps from" in loaded.stdout
