"""The wheel is the product: built from a copy of the sources, installed (not editable) into a fresh
venv, it holds the migrations (env.py, script.py.mako, versions) and none of the development-only
packages, and its `renewals` command migrates a database from outside the checkout.

The fresh venv has no packages of its own but the project: it reaches the dependencies through a path
to the test venv's site-packages (without running that venv's .pth files, so not the editable
install of the checkout). Building needs setuptools from the package index (pip's build isolation)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (
    "pyproject.toml",
    "worker.py",
    "renewals",
    "workflows",
    "activities",
    "starter",
    "fake_providers",
    "bench",
)
MIGRATIONS = ROOT / "renewals" / "db" / "migrations"


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_installed_wheel_ships_and_runs_the_migrations(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "results")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run(*pip, "wheel", "--no-deps", "-w", tmp_path / "dist", source, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("*.whl")

    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {
        "activities",
        "renewals",
        "starter",
        "workflows",
        "worker.py",
    }
    shipped = {name for name in names if name.startswith("renewals/db/migrations/")}
    expected = {
        f"renewals/db/migrations/{path.relative_to(MIGRATIONS).as_posix()}"
        for path in [MIGRATIONS / "env.py", MIGRATIONS / "script.py.mako", *MIGRATIONS.glob("versions/*.py")]
    }
    assert shipped == expected

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path)
    Path(site.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(*pip, "--python", python, "install", "--no-deps", "--no-index", wheel, cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "RENEWALS_DATABASE_URL": f"sqlite+aiosqlite:///{elsewhere / 'renewals.db'}",
    }
    imported = run(python, "-c", "import renewals; print(renewals.__file__)", cwd=elsewhere, env=env)
    assert Path(imported.strip()).is_relative_to(venv)

    run(venv / "bin" / "renewals", "dashboard", cwd=elsewhere, env=env)  # migrates, then reports
    with sqlite3.connect(elsewhere / "renewals.db") as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    latest = max(MIGRATIONS.glob("versions/*.py"))
    assert f'revision = "{revision}"' in latest.read_text(encoding="utf-8")  # at the head
