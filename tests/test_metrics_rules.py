"""The alert rules and the dashboard name only metrics that exist, in valid PromQL, and the metric
catalogue follows Prometheus' conventions.

`promtool` (Debian's `prometheus` package; `./run test` installs it as root) checks the rules file,
and every dashboard expression as a recording rule — so a typo in a panel fails here, not on a
screen. A copy of the rules with one broken expression must fail the same check.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from renewals.observability.labels import bounded, error_class, reason_class
from renewals.observability.metrics import BY_NAME, CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "renewals-rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "renewals-dashboard.json"
METRIC = re.compile(r"\b((?:renewals|temporal)_[a-z0-9_]+)")
SUFFIXES = ("_bucket", "_count", "_sum")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("no `promtool`: Debian's package `prometheus` (./run test installs it as root)")
    return found


def check_rules(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )


def rules_text() -> str:
    """The rules file as text: every metric it names (expressions and annotations) is checked."""
    return RULES.read_text()


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in BY_NAME:
            return name.removesuffix(suffix)
    return name


def test_promtool_accepts_the_rules_file() -> None:
    result = check_rules(RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        RULES.read_text().replace("max by (channel) (renewals_channel_paused) == 1", "max by (channel (x")
    )
    result = check_rules(broken)
    assert result.returncode != 0


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel_{i}", "expr": e}
                    for i, e in enumerate(dashboard_expressions())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-as-rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    result = check_rules(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_and_dashboard_name_only_catalogued_metrics() -> None:
    """Our metrics must be in the catalogue (what the exporters serve, proved by
    tests/test_metrics_counts.py); the SDK's `temporal_*` are checked there against a real scrape."""
    for expression in [rules_text(), *dashboard_expressions()]:
        for name in METRIC.findall(expression):
            if name.startswith("renewals_"):
                assert base(name) in BY_NAME, f"{name} in {expression!r} is not a metric we export"
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", rules_text(), re.MULTILINE))
    # the list: worker down, a channel paused, backlog growing, failure ratio, lateness, SLA, refusals
    assert {
        "RenewalsWorkerDown",
        "RenewalsChannelPaused",
        "RenewalsOutboxBacklogGrowing",
        "RenewalsSendFailureRatio",
        "RenewalsSendLatenessHigh",
        "RenewalsSlaBreach",
        "RenewalsWebhookRefusals",
    } <= alerts
    plotted = {
        base(n) for e in dashboard_expressions() for n in METRIC.findall(e) if n.startswith("renewals_")
    }
    assert plotted == set(BY_NAME) - {"renewals_send_window_spread_seconds", "renewals_sends_in_flight"}


def test_the_catalogue_follows_prometheus_naming() -> None:
    for info in CATALOGUE:
        assert re.fullmatch(r"renewals_[a-z0-9_]+", info.name), info.name
        assert info.kind in ("counter", "gauge", "histogram"), info.name
        assert info.name.endswith("_total") == (info.kind == "counter"), info.name
        if info.kind == "histogram":
            assert info.name.endswith("_seconds"), info.name
        assert "age" not in info.name or info.name.endswith("_seconds"), info.name
        # no label that could hold a policy number, a journey id or an address
        assert not {"journey_id", "policy", "policy_number", "recipient", "phone", "email"} & set(info.labels)


def test_label_values_stay_a_closed_set() -> None:
    assert bounded("base_osago_30", {"base_osago_30"}) == "base_osago_30"
    assert bounded("renewal-ХХХ0123-20270420", {"base_osago_30"}) == "other"
    assert error_class("InvalidPhone") == "InvalidPhone"
    assert error_class("bad number +79161234567") == "other"
    assert error_class(None) == "none"
    assert reason_class("InvalidPhone: the gateway refused +7916***4567") == "InvalidPhone"
    assert reason_class("journey_finished (paid)") == "journey_finished"
    assert reason_class("no_address") == "no_address"


def test_promtool_accepts_the_scrape_configuration() -> None:
    config = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        [promtool(), "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_docs_list_every_metric_and_alert() -> None:
    docs = (ROOT / "docs" / "observability.md").read_text()
    documented = set(re.findall(r"^\| `(renewals_[a-z0-9_]+)` \|", docs, re.MULTILINE))
    assert documented == set(BY_NAME)
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", rules_text(), re.MULTILINE))
    assert alerts == set(re.findall(r"^\| `(Renewals\w+)` \|", docs, re.MULTILINE))
