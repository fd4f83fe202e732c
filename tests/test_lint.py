"""`ruff check` is part of the suite: the project's convention is ruff-clean code, with the
rules of the pinned ruff (pyproject.toml, test extra) and the settings in pyproject.toml
and firmware/ruff.toml."""

import subprocess
import sys

from tests.conftest import REPO


def test_ruff_check_is_clean():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
                          cwd=REPO, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
