"""The build's one step pyproject.toml cannot say: templates/ goes into the wheel.

The source tree keeps every template in templates/ at the root (settings'
TEMPLATES DIRS); an installed wheel has no root, so the build copies them to
mcpbilling/templates/, where the app template loader finds them (mcpbilling is
an installed app).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithTemplates(build_py):
    def run(self):
        super().run()
        source = Path(__file__).resolve().parent / "templates"
        if source.is_dir() and not self.editable_mode:
            shutil.copytree(
                source, Path(self.build_lib) / "mcpbilling" / "templates", dirs_exist_ok=True
            )


setup(cmdclass={"build_py": BuildWithTemplates})
