# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet audit playbook ``virtiofs.libvirt.audit`` on the lab's hypervisors.

On every host of the inventory's ``hypervisors`` group that this machine can reach through
libvirt (``hypervisor``: ``lab["uri"]``; ``hypervisor2``: ``lab["hypervisor2"]["uri"]``, paths
under ``lab["hypervisor2"]["tree"]``), three domains that are never started are defined:

* ``it-audit-ok``: shared memory, two shares with a Rust virtiofsd ``<binary path>``, one with a
  ``|`` in its source directory (escaped in the Markdown table);
* ``it-audit-empty``: no shares (one row with no tag);
* ``it-audit-broken``: a share whose source directory and binary are missing.

The audit must report one row per share per host with the values share_info found, in the JSON
and in the Markdown. A second run adds an inventory host on a closed loopback port: the report
still lists the good hosts, names the dead one with its error, and the playbook exits non-zero.
Everything is removed afterwards.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "audit.yml"
BASE = "/var/tmp/it-audit"  # as the hypervisor sees it
DATA = f"{BASE}/data"
PIPE = f"{BASE}/a|b"
MISSING = f"{BASE}/missing"
BINARY = f"{BASE}/virtiofsd"
NO_BINARY = f"{BASE}/no-such-virtiofsd"
DOMAINS = ("it-audit-ok", "it-audit-empty", "it-audit-broken")
SSH_PORT = 2279  # written into the never-started domains' port forward only
DEAD = "it-audit-dead"


@dataclass
class Hypervisor:
    name: str
    uri: str
    tree: str  # where the host's / is on this machine
    libvirt_version: str = ""

    def path(self, inside: str) -> Path:
        return Path(self.tree + inside) if self.tree != "/" else Path(inside)


def inventory_hypervisors(lab: dict) -> list[str]:
    """The hosts of the ``hypervisors`` group of the lab's inventory."""
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", lab["inventory"], "--list"],
                          check=True, capture_output=True, text=True)
    return json.loads(proc.stdout)["hypervisors"]["hosts"]


def hypervisor_hosts(lab: dict) -> list[Hypervisor]:
    """The ``hypervisors`` of the lab's inventory that libvirt reaches from here."""
    names = inventory_hypervisors(lab)
    hosts = []
    for name in names:
        if name == "hypervisor":
            hosts.append(Hypervisor(name, lab["uri"], "/"))
        elif isinstance(lab.get(name), dict) and lab[name].get("uri") and lab[name].get("tree"):
            hosts.append(Hypervisor(name, lab[name]["uri"], lab[name]["tree"]))
    assert "hypervisor" in [h.name for h in hosts], names
    return hosts


def undefine(conn, name: str) -> None:
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    if dom.isActive():
        dom.destroy()
    dom.undefine()


def define_domains(host: Hypervisor, lab: dict, labctl, rust_copy) -> None:
    host.path(DATA).mkdir(parents=True, exist_ok=True)
    host.path(PIPE).mkdir(parents=True, exist_ok=True)
    rust_copy(host.path(BINARY))
    disk = f"{BASE}/disk.qcow2"  # never started: the disk is never opened
    specs = {
        "it-audit-ok": dict(shared_memory=True, filesystems=[
            {"tag": "audit-data", "source": DATA, "binary": BINARY},
            {"tag": "audit-pipe", "source": PIPE, "binary": BINARY},
        ]),
        "it-audit-empty": dict(shared_memory=False, filesystems=[]),
        "it-audit-broken": dict(shared_memory=True, filesystems=[
            {"tag": "audit-gone", "source": MISSING, "binary": NO_BINARY},
        ]),
    }
    conn = libvirt.open(host.uri)
    try:
        major, rest = divmod(conn.getLibVersion(), 1000000)
        host.libvirt_version = f"{major}.{rest // 1000}.{rest % 1000}"
        for name, spec in specs.items():
            undefine(conn, name)
            conn.defineXML(labctl.guest_xml(name, SSH_PORT, disk, lab, memory_mib=256, **spec))
    finally:
        conn.close()


def remove_domains(host: Hypervisor) -> None:
    conn = libvirt.open(host.uri)
    try:
        for name in DOMAINS:
            undefine(conn, name)
    finally:
        conn.close()
    shutil.rmtree(host.path(BASE), ignore_errors=True)


@pytest.fixture(scope="module")
def fleet(lab, labctl, copy_rust_binary):
    libvirt.registerErrorHandler(lambda *_args: None, None)
    hosts = hypervisor_hosts(lab)
    try:
        for host in hosts:
            define_domains(host, lab, labctl, copy_rust_binary)
        yield hosts
    finally:
        for host in hosts:
            remove_domains(host)


def our_rows(document: dict, host: str) -> dict:
    return {(r["domain"], r["tag"]): r for r in document["rows"] if r["host"] == host and r["domain"] in DOMAINS}


def check_host(document: dict, markdown: str, host: Hypervisor, lab: dict) -> None:
    rows = our_rows(document, host.name)
    # one row per share, one for the domain without shares
    assert sorted(rows, key=str) == sorted([
        ("it-audit-ok", "audit-data"), ("it-audit-ok", "audit-pipe"),
        ("it-audit-empty", None), ("it-audit-broken", "audit-gone"),
    ], key=str)
    version = lab["crate_version"]
    for tag, source in (("audit-data", DATA), ("audit-pipe", PIPE)):
        row = rows[("it-audit-ok", tag)]
        assert row["host_status"] == "ok"
        assert row["source"] == source
        assert (row["binary_path"], row["daemon"], row["daemon_origin"]) == (BINARY, BINARY, "binary_path")
        assert (row["daemon_implementation"], row["daemon_version"]) == ("rust", version)
        assert row["domain_active"] is False and row["attached"] is None
        assert row["restart_required"] is False and row["restart_reasons"] == []
        assert row["problems"] == []
    empty = rows[("it-audit-empty", None)]
    assert (empty["source"], empty["daemon"], empty["problems"]) == (None, None, [])
    broken = rows[("it-audit-broken", "audit-gone")]
    assert sorted(p["code"] for p in broken["problems"]) == ["binary_not_executable", "source_missing"]
    msgs = {p["code"]: p["msg"] for p in broken["problems"]}
    assert msgs["source_missing"] == f"share 'audit-gone': source directory '{MISSING}' does not exist"
    assert NO_BINARY in msgs["binary_not_executable"]
    assert (broken["daemon"], broken["daemon_implementation"]) == (NO_BINARY, None)

    summary = next(h for h in document["hosts"] if h["host"] == host.name)
    assert summary["status"] == "ok" and summary["error"] is None
    assert summary["libvirt_version"] == host.libvirt_version
    assert summary["domains"] >= 3 and summary["shares"] >= 3

    lines = markdown.splitlines()
    h = host.name
    expected = [
        f"| {h} | it-audit-ok | audit-data | {DATA} | {BINARY} | rust {version} | - | - | - |",
        f"| {h} | it-audit-ok | audit-pipe | {BASE}/a\\|b | {BINARY} | rust {version} | - | - | - |",
        f"| {h} | it-audit-empty | (no shares) | - | - | - | - | - | - |",
    ]
    for line in expected:
        assert line in lines, f"{line!r} not in the Markdown:\n{markdown}"
    prefix = f"| {h} | it-audit-broken | audit-gone | {MISSING} | {NO_BINARY} | - | - | - | "
    broken_lines = [line for line in lines if line.startswith(prefix)]
    assert len(broken_lines) == 1, markdown
    assert (f"`source_missing`: share 'audit-gone': source directory '{MISSING}' does not exist"
            in broken_lines[0])
    assert "`binary_not_executable`: " in broken_lines[0]


def read_report(out: Path) -> tuple[dict, str]:
    document = json.loads((out / "virtiofs-audit.json").read_text())
    markdown = (out / "virtiofs-audit.md").read_text()
    assert document["format"] == "virtiofs.libvirt.audit/1"
    assert markdown.startswith("# virtio-fs audit\n")
    assert f"Generated at {document['generated_at']}: " in markdown
    return document, markdown


def test_audit_reports_every_share_of_every_hypervisor(fleet, lab, run_playbook, tmp_path):
    out = tmp_path / "report"  # the playbook creates it
    res = run_playbook(PLAYBOOK, extra_vars={"virtiofs_audit_dir": str(out)}, timeout=900)
    assert res.rc == 0, res.stdout[-6000:] + res.stderr[-2000:]
    document, markdown = read_report(out)
    assert [h["host"] for h in document["hosts"]] == sorted(inventory_hypervisors(lab))
    assert document["summary"]["unreadable_hosts"] == []
    for host in fleet:
        check_host(document, markdown, host, lab)
    # the playbook changes nothing on the hypervisors
    for host in fleet:
        assert res.stats[host.name]["changed"] == 0 and res.stats[host.name]["failures"] == 0


def test_audit_names_an_unreachable_hypervisor_and_fails(fleet, lab, run_playbook, tmp_path):
    inventory = tmp_path / "dead.yml"
    inventory.write_text(json.dumps({"hypervisors": {"hosts": {DEAD: {
        "ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "root", "ansible_connection": "ssh",
    }}}}))
    out = tmp_path / "report"
    res = run_playbook(PLAYBOOK, extra_vars={"virtiofs_audit_dir": str(out)}, inventories=[inventory], timeout=900)
    assert res.rc != 0, res.stdout[-6000:]
    document, markdown = read_report(out)  # written before failing
    assert document["summary"]["unreadable_hosts"] == [DEAD]
    dead_rows = [r for r in document["rows"] if r["host"] == DEAD]
    assert len(dead_rows) == 1
    dead = dead_rows[0]
    assert (dead["host_status"], dead["domain"], dead["tag"]) == ("unreachable", None, None)
    assert [p["code"] for p in dead["problems"]] == ["host_unreachable"]
    assert "port 1" in dead["problems"][0]["msg"]
    assert any(line.startswith(f"| {DEAD} | (unreachable) | - | ") and "`host_unreachable`: " in line
               for line in markdown.splitlines()), markdown
    assert f"(1 could not be read: {DEAD})" in markdown
    for host in fleet:  # the good hypervisors are still reported in full
        check_host(document, markdown, host, lab)
    failure = res.result("Fail when a hypervisor could not be read", host="localhost")
    assert failure["failed"] is True
    assert f"could not read 1 hypervisor(s): {DEAD} (unreachable: " in failure["msg"]
