"""The layers hold: starter > worker > workflows > activities > renewals, and nothing shipped imports
fake_providers/ or bench/ (the import-linter contracts in pyproject.toml). The contracts are also run
against a small copy of the layout with one wrong import each, to prove they can fail."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("starter", "workflows", "activities", "renewals", "fake_providers", "bench")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_import_contracts_are_kept() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_worker_py_imports_no_higher_or_development_only_code() -> None:
    """worker.py is a module, not a package: import-linter sees it only from its importers."""
    tree = ast.parse((ROOT / "worker.py").read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    tops = {name.split(".")[0] for name in imported}
    assert not tops & {"starter", "fake_providers", "bench"}


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """Empty packages named as ours, worker.py, and our pyproject.toml (so: our contracts)."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "worker.py").write_text("import workflows\n")
    (tmp_path / "starter" / "cli.py").write_text("import worker\nimport renewals\n")
    (tmp_path / "workflows" / "flow.py").write_text("import activities\nimport renewals\n")
    (tmp_path / "bench" / "run.py").write_text("import fake_providers\n")
    (tmp_path / "fake_providers" / "app.py").write_text("import renewals\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_copied_layout_keeps_the_contracts(layout: Path) -> None:
    done = lint_imports(layout)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("module", "wrong"),
    [
        ("renewals/intake.py", "from starter import cli"),  # the domain imports the CLI
        ("renewals/temporal.py", "import worker"),
        ("activities/journey.py", "import workflows.flow"),
        ("workflows/journey.py", "from starter.cli import something"),
        ("starter/stack.py", "import fake_providers"),  # a subprocess, never an import
        ("renewals/channels.py", "from bench import run"),
    ],
)
def test_a_wrong_import_breaks_a_contract(layout: Path, module: str, wrong: str) -> None:
    (layout / module).write_text(wrong + "\n")
    done = lint_imports(layout)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 broken" in done.stdout
