# SPDX-License-Identifier: GPL-3.0-or-later
"""Role virtiofs.libvirt.host on the real lab (libvirt 9.0, QEMU 7.2 TCG, Rust virtiofsd 1.13.2).

* ``test_role_on_defined_domains``: bad input fails before anything changes (the messages are
  asserted); the first run installs virtiofsd from the lab's artifact server, renders two wrapper
  profiles, creates the sources and applies three shares to two defined domains with ONE share
  module call per domain; the domain XML has what the shares ask for; a second run changes
  nothing; check mode predicts a change without making it; AppArmor/SELinux are no-ops here and
  the AppArmor override renders exactly as expected into a scratch policy directory; removing
  the shares and the daemon (``virtiofsd_state=absent``) leaves no share, wrapper or daemon
  behind, and a repeated removal changes nothing.
* ``test_restart_never_then_shutdown_start``: on one booted guest, ``virtiofs_host_restart=never``
  leaves the domain running and reports it; ``shutdown_start`` shuts it down gracefully and
  starts it, after which the running daemon carries the wrapper's options and the guest mounts
  the tag; a third run changes nothing and restarts nothing.
* ``test_guest_playbook_derives_mounts_from_host_shares``: playbooks/guest.yml's mapping from
  the hypervisors' share definitions to each guest's mounts, on docs/examples/inventory.yml.

Runs the task files in ``targets/role_host/``. Skips (with the reason) when the lab is not up.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import libvirt
import pytest
import yaml
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "tests" / "integration" / "targets" / "role_host"
PREPARE = ROOT / "extensions" / "molecule" / "default" / "prepare.yml"
INSTALL_DIR = "/opt/it-host-role"
SRC = "/srv/it-host-role"
RUN_DOMAIN = "it-host-run"
RUN_PORT = 2261


SHARE_TASK = "Apply the shares of every domain in one module run"


def _share_calls(res) -> list:
    """The share step's per-domain results (domain name as "item"), from its ONE module run."""
    call = res.result(ROLE + SHARE_TASK)
    assert "results" not in call, "the share step must be one module run, not a loop"
    return [dict(r, item=name) for name, r in call["domains"].items()]


def _play(tasks: str) -> str:
    return f"""
- name: role_host
  hosts: hypervisor
  gather_facts: false
  vars_files:
    - {TARGET / 'vars' / 'main.yml'}
  tasks:
{tasks}
"""


def _include(name: str) -> str:
    return f"""    - name: Run {name}.yml
      ansible.builtin.include_tasks: {TARGET / 'tasks' / (name + '.yml')}
"""


ROLE = "virtiofs.libvirt.host : "


def _ok(res) -> None:
    assert res.rc == 0, res.failed_tasks() + "\n" + res.stdout[-4000:] + res.stderr[-3000:]


def _changed(res, host: str = "hypervisor") -> int:
    return res.stats[host]["changed"]


def _inactive(name: str):
    conn = libvirt.open("qemu:///system")
    try:
        dom = conn.lookupByName(name)
        return etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    finally:
        conn.close()


def _virtiofs(root) -> dict:
    out = {}
    for fs in root.findall("devices/filesystem"):
        if fs.find("driver") is not None and fs.find("driver").get("type") == "virtiofs":
            binary = fs.find("binary")
            cache = binary.find("cache") if binary is not None else None
            out[fs.find("target").get("dir")] = {
                "source": fs.find("source").get("dir"),
                "binary": binary.get("path") if binary is not None else None,
                "cache": cache.get("mode") if cache is not None else None,
            }
    return out


def _memory(root) -> tuple:
    mb = root.find("memoryBacking")
    if mb is None:
        return (None, None)
    src, acc = mb.find("source"), mb.find("access")
    return (src.get("type") if src is not None else None, acc.get("mode") if acc is not None else None)


def test_role_on_defined_domains(run_playbook, lab):
    try:
        # setup + every bad input: nothing may change
        res = run_playbook(_play(_include("setup") + _include("errors")))
        _ok(res)
        cases = res.tasks("Each bad input")
        assert cases, "the error cases did not run"

        # check mode on the empty host (docs/guide.md: run with --check --diff first): no daemon,
        # no wrappers, no sources yet; the role predicts every share without creating anything
        xml_empty = {d: etree.tostring(_inactive(d)) for d in ("it-host-a", "it-host-b")}
        res = run_playbook(_play(_include("apply")), check=True, diff=True)
        _ok(res)
        calls = _share_calls(res)
        assert [r["item"] for r in calls] == ["it-host-a", "it-host-b"]
        assert [r["changed"] for r in calls] == [True, True]
        assert sorted(a for a in calls[0]["actions"] if a.startswith(("add share", "create source"))) == [
            "add share 'data' (source /srv/it-host-role/a-data)",
            "add share 'media' (source /srv/it-host-role/a-media)",
            "create source directory /srv/it-host-role/a-data",
            "create source directory /srv/it-host-role/a-media",
        ]
        predicted = etree.fromstring(calls[0]["diff"]["after"].encode())
        assert _virtiofs(predicted) == {
            "data": {"source": f"{SRC}/a-data", "binary": f"{INSTALL_DIR}/virtiofsd.sh", "cache": None},
            "media": {"source": f"{SRC}/a-media", "binary": f"{INSTALL_DIR}/virtiofsd-ro.sh", "cache": None},
        }
        assert _memory(predicted) == ("memfd", "shared")
        assert {d: etree.tostring(_inactive(d)) for d in xml_empty} == xml_empty
        assert not os.path.exists(INSTALL_DIR) and not os.path.exists(SRC)

        # first run: installs, renders, applies
        res = run_playbook(_play(_include("apply") + _include("verify")))
        _ok(res)
        assert _changed(res) > 0
        results = _share_calls(res)
        # ONE module run for both domains, each with all of its shares
        assert [r["item"] for r in results] == ["it-host-a", "it-host-b"]
        assert [sorted(sh["tag"] for sh in r["shares"]) for r in results] == [["data", "media"], ["data"]]
        assert sum("add share 'data'" in a or "add share 'media'" in a for a in results[0]["actions"]) == 2
        assert all(r["changed"] for r in results)
        assert all(r["restart_required"] is False for r in results)
        # the XML libvirt now has
        a, b = _inactive("it-host-a"), _inactive("it-host-b")
        assert _virtiofs(a) == {
            "data": {"source": f"{SRC}/a-data", "binary": f"{INSTALL_DIR}/virtiofsd.sh", "cache": None},
            "media": {"source": f"{SRC}/a-media", "binary": f"{INSTALL_DIR}/virtiofsd-ro.sh", "cache": None},
        }
        assert _virtiofs(b) == {
            "data": {"source": f"{SRC}/b-data", "binary": f"{INSTALL_DIR}/virtiofsd", "cache": "always"},
        }
        assert _memory(a) == ("memfd", "shared") and _memory(b) == ("memfd", "shared")
        # confinement was skipped on this host (no AppArmor, no SELinux)
        for name in ("Allow libvirt to run the wrappers (AppArmor)", "Label the wrappers and the daemon (SELinux)"):
            assert res.result(ROLE + name).get("skipped") is True, name

        # second run: nothing changes, no define; an existing wrapper directory keeps its owner and
        # mode (here 0711, still safe: only root writes it): the role creates missing ones only
        xml_before = etree.tostring(_inactive("it-host-a"))
        os.chmod(INSTALL_DIR, 0o711)
        res = run_playbook(_play(_include("apply")))
        _ok(res)
        assert _changed(res) == 0, res.stdout[-6000:]
        assert etree.tostring(_inactive("it-host-a")) == xml_before
        assert oct(os.stat(INSTALL_DIR).st_mode & 0o7777) == "0o711"
        mkdirs = res.result(ROLE + "Create the missing wrapper directories")
        assert [r.get("changed") for r in mkdirs["results"]] == [False], mkdirs
        os.chmod(INSTALL_DIR, 0o755)

        # check mode with a changed share: predicted, not made
        changed_shares = {"rh_shares": [
            {"domain": "it-host-a", "tag": "data", "source": f"{SRC}/a-data", "cache": "always"},
            {"domain": "it-host-a", "tag": "media", "source": f"{SRC}/a-media", "wrapper": "ro"},
            {"domain": "it-host-b", "tag": "data", "source": f"{SRC}/b-data",
             "binary_path": f"{INSTALL_DIR}/virtiofsd", "cache": "always"},
        ]}
        res = run_playbook(_play(_include("apply")), extra_vars=changed_shares, check=True)
        _ok(res)
        calls = _share_calls(res)
        assert [r["changed"] for r in calls] == [True, False]
        assert any("data" in action for action in calls[0]["actions"])
        assert etree.tostring(_inactive("it-host-a")) == xml_before

        # AppArmor override, rendered for real into a scratch policy directory
        res = run_playbook(_play(_include("apparmor")))
        _ok(res)
        handler = [t for t in res.tasks(ROLE + "Reload the libvirt AppArmor profiles") if "hypervisor" in t]
        assert handler and handler[-1]["hypervisor"].get("skipped") is True  # kernel without AppArmor
        runs = [t["hypervisor"] for t in res.tasks(ROLE + "Allow libvirt to execute the wrappers and the daemon")]
        # written once, then left alone; the third run names daemon and wrappers through a symbolic link to the
        # install directory: the rules name the resolved paths, so the block is the same
        assert [r["changed"] for r in runs] == [True, False, False]

        # removal (docs/guide.md): shares absent, then wrappers and daemon gone in the same run
        removal = {"rh_shares": [{"domain": d, "tag": t, "state": "absent"}
                                 for d, t in (("it-host-a", "data"), ("it-host-a", "media"), ("it-host-b", "data"))],
                   "virtiofs_host_virtiofsd_state": "absent"}
        res = run_playbook(_play(_include("apply")), extra_vars=removal)
        _ok(res)
        assert [r["changed"] for r in _share_calls(res)] == [True, True]
        assert _virtiofs(_inactive("it-host-a")) == {} and _virtiofs(_inactive("it-host-b")) == {}
        assert _memory(_inactive("it-host-a")) == ("memfd", "shared")  # kept: harmless, other shares may need it
        assert not os.path.exists(f"{INSTALL_DIR}/virtiofsd.sh") and not os.path.exists(f"{INSTALL_DIR}/virtiofsd-ro.sh")
        assert not os.path.exists(f"{INSTALL_DIR}/virtiofsd")
        res = run_playbook(_play(_include("apply")), extra_vars=removal)
        _ok(res)
        assert _changed(res) == 0
    finally:
        res = run_playbook(_play(_include("cleanup")))
        _ok(res)
        run_playbook(f"""
- name: Remove the scratch AppArmor directory
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Remove it
      ansible.builtin.file:
        path: {INSTALL_DIR}-apparmor
        state: absent
""")


def _daemon_cmdlines(domain: str) -> list[list[str]]:
    out = []
    for pidfile in glob.glob(f"/run/libvirt/qemu/*{domain}*-fs.pid"):
        try:
            pid = int(Path(pidfile).read_text().strip())
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1])
        except (OSError, ValueError):
            continue
    return out


def _domain_id(name: str) -> int:
    conn = libvirt.open("qemu:///system")
    try:
        return conn.lookupByName(name).ID()
    finally:
        conn.close()


@pytest.mark.slow
def test_restart_never_then_shutdown_start(run_playbook, lab, labctl):
    shares = {"rh_shares": [{"domain": RUN_DOMAIN, "tag": "run", "source": f"{SRC}/run", "create_source": True}],
              "rh_domains": [RUN_DOMAIN]}
    guest = f"""
    - name: Add the test guest
      ansible.builtin.add_host:
        name: it-host-run-guest
        groups: [it_host_run]
        ansible_host: 127.0.0.1
        ansible_port: {RUN_PORT}
        ansible_user: root
        ansible_ssh_private_key_file: {lab['ssh_key']}
        ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
        ansible_python_interpreter: /usr/bin/python3
"""
    try:
        labctl.clone_guest(RUN_DOMAIN, RUN_PORT)
        # the lab guest has no systemd-logind: give it a power button handler (as molecule does)
        res = run_playbook(f"""
- name: Add the guest
  hosts: hypervisor
  gather_facts: false
  tasks:
{guest}
- name: Prepare
  ansible.builtin.import_playbook: {PREPARE}
""", extra_vars={"virtiofs_guest_hosts": "it_host_run"})
        _ok(res)
        first_id = _domain_id(RUN_DOMAIN)

        # never: defined, reported, not restarted
        res = run_playbook(_play(_include("apply")), extra_vars={**shares, "virtiofs_host_restart": "never"})
        _ok(res)
        call = _share_calls(res)[0]
        assert call["changed"] is True and call["restart_required"] is True
        report = res.result(ROLE + "Report the domains that need a full shutdown and start")
        assert RUN_DOMAIN in report["msg"]
        assert _domain_id(RUN_DOMAIN) == first_id
        assert _daemon_cmdlines(RUN_DOMAIN) == []  # the running domain has no share yet

        # shutdown_start: graceful shutdown, start, the share is live with the wrapper's options
        res = run_playbook(_play(_include("apply")),
                           extra_vars={**shares, "virtiofs_host_restart": "shutdown_start",
                                       "virtiofs_host_restart_timeout": 180})
        _ok(res)
        wait = res.result(ROLE + "Wait until the domain is shut off " + RUN_DOMAIN)
        assert wait["status"] == "shutdown" and wait.get("attempts", 1) >= 1
        assert res.result(ROLE + "Power the domain off after the timeout " + RUN_DOMAIN).get("skipped") is True
        second_id = _domain_id(RUN_DOMAIN)
        assert second_id != first_id
        cmdlines = _daemon_cmdlines(RUN_DOMAIN)
        assert cmdlines, "no virtiofsd runs for the restarted domain"
        for argv in cmdlines:
            assert argv[0] == f"{INSTALL_DIR}/virtiofsd"  # the wrapper exec'd the daemon
            assert argv[-2:] == ["--announce-submounts", "--inode-file-handles=prefer"]
            assert f"source={SRC}/run" in " ".join(argv)
        labctl.wait_ssh(RUN_PORT)
        Path(f"{SRC}/run/from-host").write_text("host\n")
        out = labctl.guest_ssh(RUN_PORT, "mkdir -p /mnt/run && mount -t virtiofs run /mnt/run && "
                                         "cat /mnt/run/from-host && echo guest > /mnt/run/from-guest && umount /mnt/run")
        assert out.stdout.strip() == "host"
        assert Path(f"{SRC}/run/from-guest").read_text() == "guest\n"

        # third run: nothing to do, nothing restarted
        res = run_playbook(_play(_include("apply")),
                           extra_vars={**shares, "virtiofs_host_restart": "shutdown_start"})
        _ok(res)
        assert _changed(res) == 0
        assert _domain_id(RUN_DOMAIN) == second_id

        # the wrapper profile gets another option while the domain runs: its virtiofsd still has
        # the old ones, so the domain is reported (never), then restarted (shutdown_start)
        wrappers = {"rh_wrappers": {
            "default": {"path": f"{INSTALL_DIR}/virtiofsd.sh",
                        "options": {"inode_file_handles": "prefer", "announce_submounts": True, "log_level": "warn"}},
            "ro": {"path": f"{INSTALL_DIR}/virtiofsd-ro.sh", "options": {"readonly": True, "log_level": "warn"}},
        }}
        res = run_playbook(_play(_include("apply")),
                           extra_vars={**shares, **wrappers, "virtiofs_host_restart": "never"})
        _ok(res)
        call = _share_calls(res)[0]
        assert call["changed"] is False and call["restart_required"] is True
        assert call["restart_reasons"] == [
            f"share 'run' runs {INSTALL_DIR}/virtiofsd.sh, which changed in this run: its virtiofsd keeps the old "
            "program and options until the domain is shut down and started"
        ]
        assert RUN_DOMAIN in res.result(ROLE + "Report the domains that need a full shutdown and start")["msg"]
        assert _domain_id(RUN_DOMAIN) == second_id
        # the wrapper is already rewritten, and a later run still knows: the running virtiofsd
        # started before the wrapper changed (read from /proc in every run, issue 12)
        res = run_playbook(_play(_include("apply")),
                           extra_vars={**shares, **wrappers, "virtiofs_host_restart": "never"})
        _ok(res)
        call = _share_calls(res)[0]
        assert call["changed"] is False and call["restart_required"] is True
        assert len(call["restart_reasons"]) == 1, call["restart_reasons"]
        assert call["restart_reasons"][0].startswith(
            f"share 'run': {INSTALL_DIR}/virtiofsd.sh changed after its virtiofsd (pid "), call["restart_reasons"]
        assert RUN_DOMAIN in res.result(ROLE + "Report the domains that need a full shutdown and start")["msg"]
        assert _domain_id(RUN_DOMAIN) == second_id
        res = run_playbook(_play(_include("apply")),
                           extra_vars={**shares, **wrappers, "rh_wrappers": {
                               **wrappers["rh_wrappers"],
                               "default": {"path": f"{INSTALL_DIR}/virtiofsd.sh", "options": {
                                   "inode_file_handles": "prefer", "announce_submounts": True, "log_level": "info"}}},
                               "virtiofs_host_restart": "shutdown_start", "virtiofs_host_restart_timeout": 180})
        _ok(res)
        assert _domain_id(RUN_DOMAIN) != second_id
        cmdlines = _daemon_cmdlines(RUN_DOMAIN)
        assert cmdlines and all(argv[-3:] == ["--announce-submounts", "--inode-file-handles=prefer", "--log-level=info"]
                                for argv in cmdlines), cmdlines
    finally:
        labctl.destroy_guest(RUN_DOMAIN)
        res = run_playbook(_play(_include("cleanup")))
        _ok(res)


def test_guest_playbook_derives_mounts_from_host_shares(tmp_path):
    """playbooks/guest.yml: each guest mounts what its hypervisor's virtiofs_host_shares define for
    its domain (mount_* keys, defaults, absent shares), and explicit virtiofs_guest_mounts win.
    Runs the playbook's own tasks with the guest role swapped for a debug of its input, against
    the example inventory (no connection: local, no guest is touched)."""
    plays = yaml.safe_load((ROOT / "playbooks" / "guest.yml").read_text())
    tasks = plays[0]["tasks"]
    assert tasks[0].get("ansible.builtin.wait_for_connection") is not None
    plays[0]["tasks"] = tasks[1:-1] + [{
        "name": "Show the mounts",
        "ansible.builtin.debug": {"var": "_virtiofs_site_guest_mounts"},
        "when": tasks[-1]["when"],
    }]
    inv = yaml.safe_load((ROOT / "docs" / "examples" / "inventory.yml").read_text())
    # a share being removed must be unmounted at its mount_path
    inv["all"]["children"]["hypervisors"]["hosts"]["kvm01.example.org"]["virtiofs_host_shares"].append(
        {"domain": "web01", "tag": "old", "state": "absent", "mount_path": "/srv/old"})
    (tmp_path / "guest.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inv, sort_keys=False))
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
                           str(tmp_path / "guest.yml"), "-e", "ansible_connection=local", "-e", "ansible_become=false"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    data = json.loads(proc.stdout[proc.stdout.index("{"):])
    shown = {}
    for play in data["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == "Show the mounts":
                for host, res in task["hosts"].items():
                    shown[host] = res["_virtiofs_site_guest_mounts"]
    assert shown == {
        "web01.example.org": [
            {"tag": "www", "path": "/var/www", "state": "mounted"},
            {"tag": "assets", "path": "/srv/assets", "state": "mounted", "options": "ro,nofail"},
            {"tag": "old", "path": "/srv/old", "state": "absent"},
        ],
        "build01.example.org": [{"tag": "cache", "path": "/var/cache/build", "state": "mounted", "automount": True}],
        "db01.example.org": [{"tag": "backups", "path": "/var/backups/shared", "state": "mounted"}],
        # explicit virtiofs_guest_mounts win over the hypervisor's definitions
        "ci01.example.org": [{"tag": "workspace", "path": "/home/ci/workspace", "owner": "ci", "group": "ci"}],
    }
