"""The build's one step pyproject.toml cannot say: templates/ and static/ go into the wheel.

The source tree keeps every template in templates/ and the layout's files in
static/ at the root (settings' TEMPLATES DIRS and STATICFILES_DIRS); an
installed wheel has no root, so the build copies them to mcpbilling/templates/
and mcpbilling/static/, where the app loaders find them (mcpbilling is an
installed app).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithTemplates(build_py):
    def run(self):
        super().run()
        root = Path(__file__).resolve().parent
        for folder in ("templates", "static"):
            if (root / folder).is_dir() and not self.editable_mode:
                shutil.copytree(
                    root / folder, Path(self.build_lib) / "mcpbilling" / folder, dirs_exist_ok=True
                )


setup(cmdclass={"build_py": BuildWithTemplates})
