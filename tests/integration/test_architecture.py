"""The layering in ARCHITECTURE.md holds: import-linter's contracts (pyproject.toml) pass.

Run in the test suite, not only in ``make lint``, so CI fails the moment a module imports
against the direction (for example the API importing an edge agent's code)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())


def test_import_contracts_are_kept() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is a dev dependency (make venv)"
    done = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
