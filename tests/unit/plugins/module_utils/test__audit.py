# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the fleet audit (module_utils/_audit.py).

Fixtures (``fixtures/audit/``, see its README.md): definition and live XML of a running lab
domain (libvirt 9.0.0), the share_info results recorded for it, and the registered share_info
results of the lab's two hypervisors plus an unreachable host and a failed run.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from lxml import etree

from ansible_collections.virtiofs.libvirt.plugins.module_utils._audit import (
    MARKDOWN_COLUMNS,
    host_status,
    markdown_row,
    md_cell,
    render_json,
    render_markdown,
    report_document,
    report_rows,
    restart_reasons,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import DomainXML

FIXTURES = Path(__file__).parent / "fixtures" / "audit"
STAMP = "2026-12-02T18:00:00Z"
BINARY = "/var/tmp/it-audit/virtiofsd"


def xml(name: str) -> DomainXML:
    return DomainXML.from_file(str(FIXTURES / name))


def results(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def without_memory_backing(doc: DomainXML) -> DomainXML:
    out = doc.copy()
    mb = out.root.find("memoryBacking")
    mb.getparent().remove(mb)
    return out


# ---------------------------------------------------------------------------------------------
# restart_reasons: definition against live XML
# ---------------------------------------------------------------------------------------------


def test_restart_nothing_pending_when_the_running_domain_matches():
    # libvirt's live XML adds <alias>, <address> and more: none of that is a difference
    assert restart_reasons(xml("libvirt-9.0-running-inactive.xml"), xml("libvirt-9.0-running-live.xml")) == []


def test_restart_every_share_difference_is_named():
    reasons = restart_reasons(xml("libvirt-9.0-pending-inactive.xml"), xml("libvirt-9.0-running-live.xml"))
    assert reasons == [
        "share 'logs' runs with other options than defined (cache None -> 'always'): libvirt cannot change a "
        "virtio-fs device of a running domain",
        "share 'extra' is defined but not attached to the running domain",
        "share 'data' is attached to the running domain but no longer defined",
    ]


def test_restart_shared_memory_defined_but_not_running():
    live = without_memory_backing(xml("libvirt-9.0-running-live.xml"))
    reasons = restart_reasons(xml("libvirt-9.0-running-inactive.xml"), live)
    assert reasons == [
        "the definition has shared memory but the running domain has not: memoryBacking changes need a full stop "
        "and start"
    ]


def test_restart_shared_memory_only_in_the_running_domain_is_not_pending():
    definition = without_memory_backing(xml("libvirt-9.0-running-inactive.xml"))
    assert restart_reasons(definition, xml("libvirt-9.0-running-live.xml")) == []


@pytest.mark.parametrize("change, expected", [
    (lambda fs: etree.SubElement(fs, "readonly"), "readonly False -> True"),
    (lambda fs: fs.find("source").set("dir", "/srv/elsewhere"),
     "source '/srv/it-audit-fixture/data' -> '/srv/elsewhere'"),
    (lambda fs: fs.find("binary").set("path", "/usr/libexec/virtiofsd"),
     "binary_path '/opt/it-audit-fixture/virtiofsd' -> '/usr/libexec/virtiofsd'"),
    (lambda fs: fs.find("driver").set("queue", "1024"), "queue_size None -> 1024"),
])
def test_restart_option_changes_of_one_share(change, expected):
    definition = xml("libvirt-9.0-running-inactive.xml")
    change(definition.find_share("data"))
    assert restart_reasons(definition, xml("libvirt-9.0-running-live.xml")) == [
        f"share 'data' runs with other options than defined ({expected}): libvirt cannot change a virtio-fs device "
        "of a running domain"
    ]


def test_restart_ignores_a_lock_like_the_share_module():
    definition = xml("libvirt-9.0-running-inactive.xml")
    etree.SubElement(definition.find_share("data").find("binary"), "lock", posix="on", flock="on")
    assert restart_reasons(definition, xml("libvirt-9.0-running-live.xml")) == []


def test_share_info_recorded_the_same_reasons():
    """The share_info result recorded on the lab carries what restart_reasons computes from the fixtures."""
    recorded = results("share_info-libvirt-9.0-running-pending.json")["domains"][0]
    assert recorded["restart_required"] is True
    assert recorded["restart_reasons"] == restart_reasons(
        xml("libvirt-9.0-pending-inactive.xml"), xml("libvirt-9.0-running-live.xml"))
    converged = results("share_info-libvirt-9.0-running-converged.json")["domains"][0]
    assert (converged["restart_required"], converged["restart_reasons"]) == (False, [])


# ---------------------------------------------------------------------------------------------
# host_status
# ---------------------------------------------------------------------------------------------


def test_host_status_of_recorded_results():
    fleet = results("results-lab-fleet.json")
    assert host_status(fleet["hypervisor"]) == ("ok", None)
    assert host_status(fleet["hypervisor2"]) == ("ok", None)
    assert host_status(fleet["it-audit-dead"]) == (
        "unreachable",
        "Task failed: Failed to connect to the host via ssh: ssh: connect to host 127.0.0.1 port 1: Connection refused",
    )
    status, error = host_status(results("results-lab-failed.json")["hypervisor"])
    assert status == "failed"
    assert error.startswith("libvirt is unreachable at 'qemu+unix:///system?socket=/nonexistent/libvirt-sock'")


@pytest.mark.parametrize("result, expected", [
    (None, ("no_result", "share_info did not run on this host (no registered result)")),
    ({"skipped": True, "skip_reason": "Conditional result was False"},
     ("no_result", "share_info was skipped on this host (Conditional result was False)")),
    ({"failed": True}, ("failed", "share_info failed without a message")),
    ({"changed": False, "msg": "hello"},
     ("failed", "the result has no list of domains: is it a virtiofs.libvirt.share_info result?")),
])
def test_host_status_of_odd_results(result, expected):
    assert host_status(result) == expected


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------


def rows_by_key(rows):
    return {(r["host"], r["domain"], r["tag"]): r for r in rows}


def test_rows_of_the_lab_fleet():
    rows = report_rows(results("results-lab-fleet.json"))
    keys = [(r["host"], r["domain"], r["tag"]) for r in rows]
    assert keys == [
        ("hypervisor", "it-audit-broken", "audit-gone"),
        ("hypervisor", "it-audit-empty", None),
        ("hypervisor", "it-audit-ok", "audit-data"),
        ("hypervisor", "it-audit-ok", "audit-pipe"),
        ("hypervisor", "vfs-lab", None),
        ("hypervisor2", "it-audit-broken", "audit-gone"),
        ("hypervisor2", "it-audit-empty", None),
        ("hypervisor2", "it-audit-ok", "audit-data"),
        ("hypervisor2", "it-audit-ok", "audit-pipe"),
        ("hypervisor2", "vfs-lab2", None),
        ("it-audit-dead", None, None),
    ]
    by = rows_by_key(rows)
    for host in ("hypervisor", "hypervisor2"):
        ok = by[(host, "it-audit-ok", "audit-pipe")]
        assert ok["host_status"] == "ok"
        assert ok["source"] == "/var/tmp/it-audit/a|b"
        assert (ok["binary_path"], ok["daemon"], ok["daemon_origin"]) == (BINARY, BINARY, "binary_path")
        assert (ok["daemon_implementation"], ok["daemon_version"]) == ("rust", "1.13.2")
        assert (ok["domain_active"], ok["attached"], ok["virtiofsd_running"]) == (False, None, None)
        assert (ok["restart_required"], ok["restart_reasons"], ok["problems"]) == (False, [], [])
        broken = by[(host, "it-audit-broken", "audit-gone")]
        assert [p["code"] for p in broken["problems"]] == ["binary_not_executable", "source_missing"]
        assert broken["problems"][1] == {
            "code": "source_missing", "share": "audit-gone",
            "msg": "share 'audit-gone': source directory '/var/tmp/it-audit/missing' does not exist",
        }
        assert (broken["daemon"], broken["daemon_implementation"]) == ("/var/tmp/it-audit/no-such-virtiofsd", None)
        empty = by[(host, "it-audit-empty", None)]
        assert (empty["source"], empty["daemon"], empty["daemon_origin"], empty["problems"]) == (None, None, None, [])
    running = by[("hypervisor", "vfs-lab", None)]
    assert (running["domain_active"], running["restart_required"]) == (True, False)
    dead = by[("it-audit-dead", None, None)]
    assert dead["host_status"] == "unreachable"
    assert dead["problems"] == [{
        "code": "host_unreachable", "share": None,
        "msg": "Task failed: Failed to connect to the host via ssh: ssh: connect to host 127.0.0.1 port 1: "
               "Connection refused",
    }]


def test_rows_of_a_running_domain():
    result = results("share_info-libvirt-9.0-running-pending.json")
    rows = report_rows({"hv01": result})
    assert [(r["tag"], r["attached"], r["virtiofsd_running"]) for r in rows] == [("logs", True, True), ("extra", False, None)]
    extra = rows[1]
    assert extra["restart_required"] is True
    assert extra["restart_reasons"] == result["domains"][0]["restart_reasons"]
    # only the problems of this share (and those of the whole domain)
    assert [p["code"] for p in extra["problems"]] == ["not_attached"]
    assert rows[0]["problems"] == []


def default_and_socket_daemons() -> dict:
    """The recorded running domain with share 'data' on the vhost-user default daemon and 'logs' on a socket."""
    result = copy.deepcopy(results("share_info-libvirt-9.0-running-converged.json"))
    data, logs = result["domains"][0]["shares"]
    data["binary_path"] = None
    logs.update(binary_path=None, source=None, source_socket="/run/vfsd/logs.sock")
    return result


def test_rows_daemon_from_the_vhost_user_default_and_from_a_socket():
    result = default_and_socket_daemons()
    result["domains"][0]["problems"] = [
        {"code": "no_rust_daemon", "share": "data", "msg": "share 'data' has no <binary path> ..."},
        {"code": "no_shared_memory", "share": None, "msg": "domain 'x' has virtio-fs shares but no shared memory"},
    ]
    rows = report_rows({"hv01": result})
    assert (rows[0]["daemon"], rows[0]["daemon_origin"], rows[0]["daemon_implementation"], rows[0]["daemon_version"]) == (
        "/usr/lib/qemu/virtiofsd", "vhost-user", "c", "7.2.22")
    assert (rows[1]["daemon"], rows[1]["daemon_origin"], rows[1]["source_socket"]) == (None, "socket", "/run/vfsd/logs.sock")
    # a domain-wide problem is on every row of the domain, a share's only on its own
    assert [p["code"] for p in rows[0]["problems"]] == ["no_rust_daemon", "no_shared_memory"]
    assert [p["code"] for p in rows[1]["problems"]] == ["no_shared_memory"]
    result["vhost_user_daemon"] = None
    row = report_rows({"hv01": result})[0]
    assert (row["daemon"], row["daemon_origin"]) == (None, None)


def test_rows_of_a_host_without_domains_and_a_host_without_result():
    rows = report_rows({"zz": None, "aa": {"changed": False, "domains": [], "libvirt_version": "9.0.0"}})
    assert [(r["host"], r["host_status"], r["domain"], [p["code"] for p in r["problems"]]) for r in rows] == [
        ("aa", "ok", None, []),
        ("zz", "no_result", None, ["no_result"]),
    ]


def test_rows_refuse_a_list():
    with pytest.raises(TypeError, match="dict of inventory host name to share_info result, got list"):
        report_rows([{"domains": []}])


# ---------------------------------------------------------------------------------------------
# Document and JSON
# ---------------------------------------------------------------------------------------------


def test_document_of_the_lab_fleet():
    doc = report_document(results("results-lab-fleet.json"), STAMP)
    assert doc["format"] == "virtiofs.libvirt.audit/1"
    assert doc["generated_at"] == STAMP
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert list(hosts) == ["hypervisor", "hypervisor2", "it-audit-dead"]
    assert hosts["hypervisor"]["libvirt_version"] == "9.0.0"
    assert hosts["hypervisor"]["vhost_user_daemon"]["binary"] == "/usr/lib/qemu/virtiofsd"
    assert hosts["hypervisor"]["vhost_user_daemon"]["implementation"] == "c"
    assert (hosts["hypervisor2"]["libvirt_version"], hosts["hypervisor2"]["vhost_user_daemon"]) == ("11.3.0", None)
    for name in ("hypervisor", "hypervisor2"):
        assert (hosts[name]["status"], hosts[name]["domains"], hosts[name]["shares"], hosts[name]["problems"]) == (
            "ok", 4, 3, 2)
    assert hosts["it-audit-dead"]["status"] == "unreachable"
    assert (hosts["it-audit-dead"]["libvirt_version"], hosts["it-audit-dead"]["domains"]) == (None, 0)
    assert doc["summary"] == {
        "hosts": 3, "unreadable_hosts": ["it-audit-dead"], "domains": 8, "shares": 6,
        "rows_with_problems": 3, "restart_pending_domains": 0,
    }


def test_document_counts_restart_pending_domains_once():
    pending = results("share_info-libvirt-9.0-running-pending.json")
    doc = report_document({"hv01": pending, "hv02": results("results-lab-failed.json")["hypervisor"]}, STAMP)
    assert doc["summary"]["restart_pending_domains"] == 1  # two rows, one domain
    assert doc["summary"]["unreadable_hosts"] == ["hv02"]
    assert doc["hosts"][1]["status"] == "failed"


def test_json_round_trips_and_is_stable():
    doc = report_document(results("results-lab-fleet.json"), STAMP)
    text = render_json(doc)
    assert text.endswith("}\n")
    assert json.loads(text) == doc
    assert text == render_json(report_document(results("results-lab-fleet.json"), STAMP))
    assert '"source": "/var/tmp/it-audit/a|b"' in text


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    (None, "-"),
    ("", "-"),
    ("  ", "-"),
    ("/srv/a|b", "/srv/a\\|b"),
    ("one\ntwo\r\nthree\rfour", "one<br>two<br>three<br>four"),
    ("add <memoryBacking><source type='memfd'/>", "add &lt;memoryBacking&gt;&lt;source type='memfd'/&gt;"),
    ("source_missing", "source_missing"),
    ("/srv/_private_/x", "/srv/\\_private\\_/x"),
    ("a*b `c` [d](e) f\\g & h", "a\\*b \\`c\\` \\[d\\](e) f&#92;g &amp; h"),
    (42, "42"),
])
def test_md_cell(value, expected):
    assert md_cell(value) == expected


def test_md_cell_never_leaves_a_cell_separator_or_line_break():
    nasty = "|a|\n|b\\|c|\r\n"
    cell = md_cell(nasty)
    assert "\n" not in cell and "\r" not in cell
    assert cell.replace("\\|", "").count("|") == 0


def test_markdown_of_the_lab_fleet():
    text = render_markdown(report_document(results("results-lab-fleet.json"), STAMP))
    lines = text.splitlines()
    assert lines[0] == "# virtio-fs audit"
    assert lines[2] == (
        "Generated at 2026-12-02T18:00:00Z: 3 hypervisor(s) (1 could not be read: it-audit-dead), 8 domain(s), "
        "6 share(s), 3 row(s) with problems, 0 domain(s) with a restart pending."
    )
    hosts = lines[lines.index("## Hypervisors") + 2:lines.index("## Shares") - 1]
    assert hosts == [
        "| host | status | libvirt | vhost-user daemon | domains | shares | problems | error |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        "| hypervisor | ok | 9.0.0 | /usr/lib/qemu/virtiofsd (c 7.2.22) | 4 | 3 | 2 | - |",
        "| hypervisor2 | ok | 11.3.0 | none registered | 4 | 3 | 2 | - |",
        "| it-audit-dead | unreachable | - | - | - | - | - | Task failed: Failed to connect to the host via ssh: ssh: "
        "connect to host 127.0.0.1 port 1: Connection refused |",
    ]
    shares = lines[lines.index("## Shares") + 2:]
    assert shares[0] == "| " + " | ".join(MARKDOWN_COLUMNS) + " |"
    assert shares[1] == "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    assert len(shares) == 2 + 11
    assert shares[2] == (
        "| hypervisor | it-audit-broken | audit-gone | /var/tmp/it-audit/missing | /var/tmp/it-audit/no-such-virtiofsd "
        "| - | - | - | `binary_not_executable`: share 'audit-gone': binary '/var/tmp/it-audit/no-such-virtiofsd' is not "
        "an executable file on this host<br>`source_missing`: share 'audit-gone': source directory "
        "'/var/tmp/it-audit/missing' does not exist |"
    )
    assert shares[3] == "| hypervisor | it-audit-empty | (no shares) | - | - | - | - | - | - |"
    assert shares[4] == (
        "| hypervisor | it-audit-ok | audit-data | /var/tmp/it-audit/data | /var/tmp/it-audit/virtiofsd | rust 1.13.2 "
        "| - | - | - |"
    )
    assert shares[5] == (
        "| hypervisor | it-audit-ok | audit-pipe | /var/tmp/it-audit/a\\|b | /var/tmp/it-audit/virtiofsd | rust 1.13.2 "
        "| - | - | - |"
    )
    # a running domain without shares: nothing attached, no restart pending
    assert shares[6] == "| hypervisor | vfs-lab | (no shares) | - | - | - | - | no | - |"
    assert shares[-1] == (
        "| it-audit-dead | (unreachable) | - | - | - | - | - | - | `host_unreachable`: Task failed: Failed to connect "
        "to the host via ssh: ssh: connect to host 127.0.0.1 port 1: Connection refused |"
    )
    # every table line has as many cells as its header
    for line in hosts + shares:
        assert line.replace("\\|", "").count("|") == (9 if line in hosts else 10), line


def test_markdown_rows_of_a_running_domain_with_a_restart_pending():
    doc = report_document({"hv01": results("share_info-libvirt-9.0-running-pending.json")}, STAMP)
    logs, extra = (markdown_row(r) for r in doc["rows"])
    reasons = (
        "yes<br>share 'logs' runs with other options than defined (cache None -&gt; 'always'): libvirt cannot change "
        "a virtio-fs device of a running domain<br>share 'extra' is defined but not attached to the running domain"
        "<br>share 'data' is attached to the running domain but no longer defined"
    )
    assert logs == [
        "hv01", "it-audit-fixture", "logs", "/srv/it-audit-fixture/logs", "/opt/it-audit-fixture/virtiofsd",
        "rust 1.13.2", "yes", reasons, "-",
    ]
    assert extra[6:8] == ["no", reasons]
    assert extra[8] == ("`not_attached`: share 'extra' is defined but not attached to the running domain "
                        "(restart the domain, or attach it with live=true)")
    assert "1 domain(s) with a restart pending" in render_markdown(doc)


def test_markdown_row_of_the_vhost_user_default_a_socket_and_readonly():
    result = default_and_socket_daemons()
    result["domains"][0]["shares"][0]["readonly"] = True
    first, second = (markdown_row(r) for r in report_rows({"hv01": result}))
    assert first[3:6] == ["/srv/it-audit-fixture/data (read-only)", "/usr/lib/qemu/virtiofsd (vhost-user default)", "c 7.2.22"]
    assert first[6:8] == ["yes", "no"]
    assert second[4:6] == ["external, socket /run/vfsd/logs.sock", "-"]


def test_markdown_of_a_failed_host():
    doc = report_document(results("results-lab-failed.json"), STAMP)
    row = markdown_row(doc["rows"][0])
    assert row[:3] == ["hypervisor", "(share_info failed)", "-"]
    assert row[8].startswith("`share_info_failed`: libvirt is unreachable at 'qemu+unix:///system?socket=/nonexistent/")
