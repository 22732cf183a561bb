# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the filter virtiofs.libvirt.audit_report on share_info results recorded on the lab
(``tests/unit/plugins/module_utils/fixtures/audit/``, see its README.md)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.virtiofs.libvirt.plugins.filter.audit_report import FilterModule

FIXTURES = Path(__file__).resolve().parents[1] / "module_utils" / "fixtures" / "audit"
STAMP = "2026-12-02T18:00:00Z"


@pytest.fixture
def audit_report():
    return FilterModule().filters()["audit_report"]


@pytest.fixture
def fleet():
    return json.loads((FIXTURES / "results-lab-fleet.json").read_text())


def test_only_audit_report_is_exported():
    assert list(FilterModule().filters()) == ["audit_report"]


def test_rows_by_default(audit_report, fleet):
    rows = audit_report(fleet)
    assert len(rows) == 11
    assert rows[0]["host"] == "hypervisor" and rows[0]["domain"] == "it-audit-broken" and rows[0]["tag"] == "audit-gone"
    assert [p["code"] for p in rows[0]["problems"]] == ["binary_not_executable", "source_missing"]
    assert rows[-1]["host"] == "it-audit-dead" and rows[-1]["host_status"] == "unreachable"
    assert audit_report(fleet, format="rows") == rows


def test_document_and_json_carry_the_given_time_stamp(audit_report, fleet):
    doc = audit_report(fleet, format="document", generated_at=STAMP)
    assert doc["generated_at"] == STAMP
    assert doc["summary"]["unreadable_hosts"] == ["it-audit-dead"]
    assert [h["libvirt_version"] for h in doc["hosts"]] == ["9.0.0", "11.3.0", None]
    text = audit_report(fleet, format="json", generated_at=STAMP)
    assert isinstance(text, str)
    assert json.loads(text) == doc


def test_time_stamp_defaults_to_utc_now(audit_report, fleet):
    doc = audit_report(fleet, format="document")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["generated_at"])


def test_markdown(audit_report, fleet):
    text = audit_report(fleet, format="markdown", generated_at=STAMP)
    lines = text.splitlines()
    assert lines[0] == "# virtio-fs audit"
    assert lines[2].startswith("Generated at 2026-12-02T18:00:00Z: 3 hypervisor(s) (1 could not be read: it-audit-dead)")
    assert ("| hypervisor2 | it-audit-ok | audit-pipe | /var/tmp/it-audit/a\\|b | /var/tmp/it-audit/virtiofsd "
            "| rust 1.13.2 | - | - | - |") in lines
    assert "| hypervisor2 | it-audit-empty | (no shares) | - | - | - | - | - | - |" in lines


def test_a_failed_host_is_a_row(audit_report):
    failed = json.loads((FIXTURES / "results-lab-failed.json").read_text())
    rows = audit_report(failed)
    assert [(r["host"], r["host_status"], [p["code"] for p in r["problems"]]) for r in rows] == [
        ("hypervisor", "failed", ["share_info_failed"]),
    ]


@pytest.mark.parametrize("value, match", [
    ([], "audit_report needs a dict of inventory host name to share_info result, got list: build it with dict"),
    ("hypervisor", "got str"),
])
def test_refuses_what_is_not_a_dict(audit_report, value, match):
    with pytest.raises(AnsibleFilterError, match=re.escape(match)):
        audit_report(value)


def test_refuses_an_unknown_format(audit_report, fleet):
    with pytest.raises(AnsibleFilterError, match=r"format must be one of rows, document, json, markdown, got 'html'"):
        audit_report(fleet, format="html")
