"""The production layout in deploy/ is installable as shipped.

* The systemd units pass `systemd-analyze verify` (with the install prefix pointed at this checkout's
  `renewals`, which verify requires to exist), and a unit with a typo'd directive fails it: verify
  only warns about those, so any output counts as a failure.
* Every name in the environment-file template is a real setting (a typo would be silently ignored).
* systemd waits longer for a stopping worker than the worker lets its sends in hand finish.
* The container image copies only what exists, and runs only commands `renewals` has.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from renewals.settings import Settings
from starter.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
PREFIX = "/opt/renewals/venv/bin/renewals"


def cli_commands() -> set[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("no `systemd-analyze` (Debian's package `systemd`; ./run test installs it as root)")
    return found


def installed_copy(tmp_path: Path) -> list[Path]:
    """The units as an installer would lay them out, the instance of the worker template included."""
    renewals = shutil.which("renewals", path=str(ROOT / ".venv" / "bin"))
    assert renewals is not None, "the project is not installed in .venv"
    units = []
    for unit in sorted(UNITS.iterdir()):
        text = unit.read_text().replace(PREFIX, renewals)
        name = unit.name.replace("@.service", "@1.service")
        (tmp_path / unit.name).write_text(text)
        if name != unit.name:
            (tmp_path / name).write_text(text)
        units.append(tmp_path / name)
    return units


def verify(units: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze(), "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=units[0].parent,
    )


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    units = installed_copy(tmp_path)
    assert {u.name for u in units} >= {
        "renewals-worker@1.service",
        "renewals-webhooks.service",
        "renewals-schedule.service",
        "renewals-migrate.service",
        "renewals.target",
    }
    result = verify(units)
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), (
        result.stdout + result.stderr
    )


def test_a_broken_unit_fails_verification(tmp_path: Path) -> None:
    units = installed_copy(tmp_path)
    webhooks = next(u for u in units if u.name == "renewals-webhooks.service")
    webhooks.write_text(webhooks.read_text().replace("KillSignal=SIGINT", "KillSignal=SIGNOPE"))
    result = verify([webhooks])
    assert "SIGNOPE" in result.stdout + result.stderr


def test_the_units_run_the_commands_renewals_has() -> None:
    commands = cli_commands()
    for unit in UNITS.glob("*.service"):
        for line in re.findall(r"^ExecStart=(.+)$", unit.read_text(), re.MULTILINE):
            program, command, *_ = line.split()
            assert program == PREFIX, unit.name
            assert command in commands, f"{unit.name}: `renewals {command}` does not exist"


def env_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.lstrip("# ").strip()
        match = re.match(r"(RENEWALS_[A-Z0-9_]+)=", line)
        if match:
            names.append(match.group(1))
    return names


def test_every_name_in_the_environment_templates_is_a_setting() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    names = env_names(DEPLOY / "renewals.env.example") + env_names(DEPLOY / "secrets.env.example")
    assert len(names) > 15
    for name in names:
        field = name.removeprefix("RENEWALS_").split("__", 1)[0]
        assert field in fields, f"{name} is not a setting (renewals/settings.py)"
    for unit in UNITS.glob("*.service"):  # the units' own Environment= lines too
        for name in re.findall(r"^Environment=(RENEWALS_[A-Z_]+)=", unit.read_text(), re.MULTILINE):
            assert name.removeprefix("RENEWALS_") in fields, f"{unit.name}: {name}"


def test_systemd_waits_longer_for_a_stopping_worker_than_the_worker_waits_for_its_sends() -> None:
    """Otherwise systemd SIGKILLs the worker while it lets the sends in hand finish."""
    unit = (UNITS / "renewals-worker@.service").read_text()
    [stop_seconds] = re.findall(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE)
    [grace] = re.findall(
        r"^RENEWALS_WORKER_SHUTDOWN_GRACE_SECONDS=(\d+)$",
        (DEPLOY / "renewals.env.example").read_text(),
        re.MULTILINE,
    )
    assert float(grace) == Settings().worker_shutdown_grace_seconds
    assert int(stop_seconds) >= float(grace) + 10, (stop_seconds, grace)


def test_the_container_image_copies_what_exists_and_runs_real_commands() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    for sources in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for source in sources.split():
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
    fields = {name.upper() for name in Settings.model_fields}
    for name in re.findall(r"(RENEWALS_[A-Z_]+)=", text):
        assert name.removeprefix("RENEWALS_") in fields, name
    commands = cli_commands()
    assert re.search(r'^ENTRYPOINT \["renewals"\]$', text, re.MULTILINE)
    for command in re.findall(r"renewals (\w+)", text):
        assert command in commands, f"`renewals {command}` does not exist"


def test_the_container_image_instructions_are_exec_form_json() -> None:
    """ENTRYPOINT, CMD and HEALTHCHECK … CMD in exec form: JSON arrays (a typo'd quote would make the
    runtime fall back to a shell string, and the signal no longer reaches `renewals`)."""
    text = (DEPLOY / "Containerfile").read_text()
    forms = re.findall(r"^(?:ENTRYPOINT|CMD|HEALTHCHECK .*? CMD) (\[.*\])$", text, re.MULTILINE)
    assert len(forms) == 3, forms
    for form in forms:
        parsed = json.loads(form)
        assert isinstance(parsed, list) and all(isinstance(part, str) for part in parsed)
    assert json.loads(forms[-1]) == ["worker"]  # the default command
