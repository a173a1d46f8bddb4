"""The Prometheus files we ship, checked by Prometheus' own promtool (a real peer: Debian's
``prometheus`` package, which dev.sh installs), and held to what the code and the docs say."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

import ingest.bridge_metrics
import salespulse.metrics
import sinks.alerts.metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "salespulse-rules.yml"
# Working hours and days take days of simulated time: their tests step by 30 minutes.
RULE_TESTS = (
    PROMETHEUS / "salespulse-rules.test.yml",
    PROMETHEUS / "salespulse-rules.hours.test.yml",
)
OPERATIONS = ROOT / "docs" / "operations.md"
# Modules whose metrics the rules may use; imported for their registrations.
METRIC_MODULES = (salespulse.metrics, sinks.alerts.metrics, ingest.bridge_metrics)


def promtool(*args: str) -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: install Debian's prometheus package (./dev.sh setup does)"
    done = subprocess.run(
        [tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{output}"
    return output


def alerting_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("check", "rules", RULES.name)
    output = promtool("test", "rules", *(path.name for path in RULE_TESTS))
    assert output.count("SUCCESS") == len(RULE_TESTS)


def test_promtool_accepts_the_example_configuration() -> None:
    output = promtool("check", "config", "prometheus.yml")
    assert "is valid prometheus config file syntax" in output


def test_every_alert_fires_in_one_test_case_and_stays_quiet_in_another() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    cases = [case for path in RULE_TESTS for case in yaml.safe_load(path.read_text())["tests"]]
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - firing == set(), "never seen firing"
    assert names - quiet == set(), "never seen quiet"


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_alert_explains_itself_and_has_its_runbook_section() -> None:
    anchors = {
        github_anchor(line.lstrip("#"))
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in alerting_rules():
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/operations.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/operations.md"


def exported_names() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum")}
        else:
            names.add(family.name)
    return names


def test_the_rules_use_only_metrics_the_code_exports() -> None:
    used = set(re.findall(r"\bsalespulse_[a-z_]+", RULES.read_text()))
    assert used, "no salespulse metric in the rules?"
    assert used - exported_names() == set()
