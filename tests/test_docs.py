"""Claims of the docs that the code decides (issue 28, item 13): where they disagreed."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from stream.scoring.model import load_model

ROOT = Path(__file__).resolve().parents[1]


def text(path: str) -> str:
    return " ".join((ROOT / path).read_text().split())  # one line: claims wrap anywhere


def test_notifier_doc_says_what_the_packaged_model_ships_for_sla_timers() -> None:
    on = load_model(None).rules.escalation is not None
    doc = text("docs/notifier.md")
    assert ("The packaged model ships them **on**" in doc) is on
    assert "ships it off" not in doc


def test_readme_gives_one_duration_for_the_test_suite() -> None:
    claims = re.findall(r"takes about (\d+) minutes", text("README.md"))
    assert len(claims) == 1, claims


def test_deploy_readme_lists_every_alert() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    table = set(
        re.findall(r"^\| (Leadstream\w+) \|", (ROOT / "deploy/README.md").read_text(), re.M)
    )
    assert alerts == table
