# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection across the lab's fleet: ``hypervisor`` (this machine, Debian 12, libvirt 9.0)
and ``hypervisor2`` (Debian 13, libvirt 11, Debian's virtiofsd package, its own mount and PID
namespace, reached over SSH), wherever libvirt's behaviour differs:

* the ``virtiofsd`` target on hypervisor2 (url install, vhost-user registration, the package
  binary on Debian 13; the Debian 12 case, the legacy C daemon, runs in test_virtiofsd.py);
* the host role's default ``method: package``: installs Debian 13's package, is idempotent, and
  is refused on Debian 12 (only the legacy C daemon there);
* version-gated share options: ``readonly``, ``idmap``, ``openfiles`` defined on libvirt 11,
  refused with the version named on 9.0, the definition untouched;
* a running guest on hypervisor2: libvirt 11's ``--print-capabilities`` probe and
  ``--fd=N --shared-dir DIR`` calling style through the wrapper (seen by a logging shim between
  the wrapper and the daemon), live attach with ``<readonly/>`` and ``<openfiles>`` (the guest
  cannot write), ``share_info``, restart reporting, the daemon libvirt picks through a
  registered vhost-user descriptor, live detach;
* fleet behaviour: one hypervisor whose libvirtd is stopped fails alone, the recap names it, the
  next run converges. (The rolling ``shutdown_start`` with ``virtiofs_serial: 1`` across both,
  one wrapper profile rendered on both and validated against each host's own daemon, is checked
  in test_molecule.py: the molecule scenario is that rolling restart, on booted guests.)

Domains are called ``it-fleet-*``, SSH ports 2241-2249; everything is removed afterwards.
"""
from __future__ import annotations

import re
import uuid
from pathlib import Path

import libvirt
import pytest
from lxml import etree

ROLE = "virtiofs.libvirt.host : "
WRAPPER_ARGV = ["--announce-submounts", "--inode-file-handles=prefer"]

pytestmark = [pytest.mark.slow]


def in_tree(lab2: dict, path: str) -> Path:
    """A path of hypervisor2 as this machine sees it."""
    return Path(lab2["tree"]) / path.lstrip("/")


def inactive(uri: str, name: str):
    conn = libvirt.open(uri)
    try:
        return etree.fromstring(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    finally:
        conn.close()


def ok(res) -> None:
    assert res.rc == 0, res.stdout[-8000:] + res.stderr[-3000:]


@pytest.fixture
def rust_package(run_playbook, lab2):
    """Debian's virtiofsd installed on hypervisor2 (the package test below removes and reinstalls it)."""
    res = run_playbook("""
- name: Package
  hosts: hypervisor2
  gather_facts: false
  tasks:
    - name: Install virtiofsd
      ansible.builtin.apt:
        name: virtiofsd
        state: present
""")
    ok(res)
    return "/usr/libexec/virtiofsd"


# ---------------------------------------------------------------- daemon installation

def test_virtiofsd_target_on_hypervisor2(run_target, lab, lab2):
    res = run_target("virtiofsd", host="hypervisor2", extra_vars={"vf_skip_source": True}, timeout=2400)
    assert res.result("Install", "hypervisor2")["changed"] is True
    assert res.result("Install again", "hypervisor2")["changed"] is False
    assert res.result("A checksum mismatch fails", "hypervisor2")["failed"] is True
    # Debian 13: the package binary is the Rust daemon at /usr/libexec/virtiofsd
    pkg = res.result("Find and verify the package binary", "hypervisor2")
    assert pkg["path"] == "/usr/libexec/virtiofsd" and pkg["implementation"] == "rust", pkg
    assert pkg["legacy_daemons"] == []
    # no C daemon on Debian 13: /usr/lib/qemu/virtiofsd is the package's symlink to the Rust one
    assert res.result("Registration is idempotent", "hypervisor2").get("failed") is not True
    for d in ("/opt/it-virtiofsd-url", "/opt/it-virtiofsd-vhost-user"):
        assert not in_tree(lab2, d).exists(), f"{d} left behind on hypervisor2"


PACKAGE_PLAY = """
- name: The host role with its default virtiofsd method (package)
  hosts: "{{ it_hosts }}"
  gather_facts: false
  roles:
    - role: virtiofs.libvirt.host
      vars:
        virtiofs_host_virtiofsd_install_dir: /opt/it-fleet-pkg
"""


def test_role_package_method_installs_on_debian13_and_is_refused_on_debian12(run_playbook, lab, lab2):
    tree_binary = in_tree(lab2, "/usr/libexec/virtiofsd")
    try:
        res = run_playbook("""
- name: Start without the package
  hosts: hypervisor2
  gather_facts: false
  tasks:
    - name: Remove virtiofsd
      ansible.builtin.apt:
        name: virtiofsd
        state: absent
""")
        ok(res)
        assert not tree_binary.exists()

        # one play on both: Debian 12 refuses (no Rust package), Debian 13 installs
        res = run_playbook(PACKAGE_PLAY, extra_vars={"it_hosts": "hypervisors"})
        assert res.rc != 0
        assert res.stats["hypervisor"]["failures"] == 1 and res.stats["hypervisor"]["changed"] == 0
        refusal = res.result(ROLE + "Refuse method=package where the distribution has no Rust virtiofsd")
        assert refusal["failed"] is True
        assert "Debian 12" in refusal["msg"] and "has no Rust virtiofsd package" in refusal["msg"]
        assert "virtiofs_host_virtiofsd_method=url" in refusal["msg"]
        assert not Path("/opt/it-fleet-pkg").exists()  # nothing was written on the refusing host
        assert res.stats["hypervisor2"]["failures"] == 0 and res.stats["hypervisor2"]["changed"] > 0
        daemon = res.result(ROLE + "Install and verify the Rust virtiofsd", "hypervisor2")
        assert daemon["path"] == "/usr/libexec/virtiofsd" and daemon["implementation"] == "rust"
        assert tree_binary.exists()
        status = in_tree(lab2, "/var/lib/dpkg/status").read_text()
        assert re.search(r"^Package: virtiofsd\nStatus: install ok installed$", status, re.M)
        wrapper = in_tree(lab2, "/opt/it-fleet-pkg/virtiofsd.sh").read_text()
        assert "exec /usr/libexec/virtiofsd " in wrapper

        # idempotent
        res = run_playbook(PACKAGE_PLAY, extra_vars={"it_hosts": "hypervisor2"})
        ok(res)
        assert res.stats["hypervisor2"]["changed"] == 0
    finally:
        res = run_playbook("""
- name: Clean up
  hosts: hypervisor2
  gather_facts: false
  tasks:
    - name: Keep the package (the other tests use it)
      ansible.builtin.apt:
        name: virtiofsd
        state: present
    - name: Remove the wrapper directory
      ansible.builtin.file:
        path: /opt/it-fleet-pkg
        state: absent
""")
        ok(res)


# ---------------------------------------------------------------- version-gated options

GATE_PLAY = """
- name: Version-gated share options
  hosts: hypervisors
  gather_facts: false
  tasks:
    - name: Gated options
      virtiofs.libvirt.share:
        domain: "{{ it_domains[inventory_hostname] }}"
        shares:
          - "{{ {'tag': item.tag, 'source': '/srv/it-fleet-gate/' ~ item.tag, 'create_source': true} | combine(item.opts) }}"
      register: it_gate
      ignore_errors: true
      loop:
        - {name: readonly, tag: ro, opts: {readonly: true}}
        - {name: idmap, tag: idm, opts: {idmap: {uid: [{start: 0, target: 100000, count: 65536}],
                                                 gid: [{start: 0, target: 100000, count: 65536}]}}}
        - {name: openfiles, tag: nof, opts: {openfiles: 4096}}
"""


def test_version_gated_options_work_on_libvirt11_and_are_refused_on_9(run_playbook, lab, lab2, labctl):
    domains = {"hypervisor": "it-fleet-gate", "hypervisor2": "it-fleet-gate2"}
    try:
        for host, name in domains.items():
            labctl.clone_guest(name, 0, start=False, shared_memory=True, hypervisor=host)
        before = etree.tostring(inactive(lab["uri"], domains["hypervisor"]), method="c14n")
        res = run_playbook(GATE_PLAY, extra_vars={"it_domains": domains})
        assert res.rc == 0, res.stdout[-6000:]
        results = {host: {r["item"]["name"]: r for r in res.result("Gated options", host)["results"]}
                   for host in domains}
        # libvirt 9.0: each one refused, naming the version it needs; nothing changed
        want = {"readonly": "11.0.0", "idmap": "10.0.0", "openfiles": "10.6.0"}
        for opt, version in want.items():
            r = results["hypervisor"][opt]
            # (the JSON callback drops per-item "failed"; the loop's result carries it)
            assert r["changed"] is False and "needs libvirt" in r.get("msg", ""), r
            assert f"needs libvirt >= {version}" in r["msg"] and "9.0.0" in r["msg"], r["msg"]
        assert res.result("Gated options", "hypervisor")["failed"] is True
        assert etree.tostring(inactive(lab["uri"], domains["hypervisor"]), method="c14n") == before
        # libvirt 11: defined, and in the definition
        for opt in want:
            r = results["hypervisor2"][opt]
            assert "msg" not in r and r["changed"] is True, r
        assert res.result("Gated options", "hypervisor2").get("failed") is not True
        root = inactive(lab2["uri"], domains["hypervisor2"])
        fs = {f.find("target").get("dir"): f for f in root.findall("devices/filesystem")}
        assert fs["ro"].find("readonly") is not None
        uid = fs["idm"].find("idmap/uid")
        assert (uid.get("start"), uid.get("target"), uid.get("count")) == ("0", "100000", "65536")
        assert fs["nof"].find("binary/openfiles").get("max") == "4096"
    finally:
        for host, name in domains.items():
            labctl.destroy_guest(name, hypervisor=host)


# ---------------------------------------------------------------- a running guest on libvirt 11

RUN2 = "it-fleet-run2"
RUN2_PORT = 2241
SHIM_LOG = "/var/log/it-fleet-shim.log"

RUN2_PLAY = """
- name: Share on hypervisor2
  hosts: hypervisor2
  gather_facts: false
  tasks:
    - name: Share
      virtiofs.libvirt.share:
        domain: it-fleet-run2
        shares: "{{ it_shares }}"
        live: auto
        exclusive: true
      register: it_share
    - name: Info
      virtiofs.libvirt.share_info:
        domain: it-fleet-run2
"""


def run2_share(run_playbook, shares, whole_report=False):
    res = run_playbook(RUN2_PLAY, extra_vars={"it_shares": shares})
    ok(res)
    info = res.result("Info", "hypervisor2")
    return res.result("Share", "hypervisor2"), (info if whole_report else info["domains"][0])


def test_running_guest_on_libvirt11(run_playbook, lab, lab2, labctl, rust_package):
    key = lab2["guest_ssh_key"]
    marker = uuid.uuid4().hex
    src_one = in_tree(lab2, "/srv/it-fleet/one")
    try:
        # two spare root ports more than the lab's guests: two shares are hot-plugged at once
        labctl.clone_guest(RUN2, RUN2_PORT, shared_memory=True, hypervisor="hypervisor2", extra_root_ports=2)
        # A logging shim between the wrapper and the daemon records how libvirt 11 calls the wrapper.
        res = run_playbook(f"""
- name: Wrapper on hypervisor2
  hosts: hypervisor2
  gather_facts: false
  tasks:
    - name: Directory
      ansible.builtin.file:
        path: /opt/it-fleet
        state: directory
        mode: "0755"
    - name: Shim
      ansible.builtin.copy:
        dest: /opt/it-fleet/shim
        mode: "0755"
        content: |
          #!/bin/sh
          printf '%s\\n' "$*" >> {SHIM_LOG}
          exec {rust_package} "$@"
    - name: Wrapper
      virtiofs.libvirt.virtiofsd_wrapper:
        path: /opt/it-fleet/virtiofsd.sh
        binary: /opt/it-fleet/shim
        options:
          inode_file_handles: prefer
          announce_submounts: true
      register: it_wrapper
""")
        ok(res)
        assert res.result("Wrapper", "hypervisor2")["argv"] == WRAPPER_ARGV
        in_tree(lab2, SHIM_LOG).unlink(missing_ok=True)
        src_one.mkdir(parents=True, exist_ok=True)
        (src_one / "from-host.txt").write_text(marker + "\n")

        # live attach, read-only, with an open-file limit (libvirt 11 features)
        one = {"tag": "one", "source": "/srv/it-fleet/one", "binary_path": "/opt/it-fleet/virtiofsd.sh",
               "readonly": True, "openfiles": 2048}
        share, info = run2_share(run_playbook, [one])
        assert share["changed"] is True and share["restart_required"] is False, share
        (entry,) = info["shares"]
        assert entry["attached"] is True and entry["readonly"] is True
        daemon = entry["virtiofsd"]
        assert daemon["running"] is True and daemon["log_exists"] is True, daemon
        argv = daemon["cmdline"]
        assert argv[0] == rust_package  # wrapper and shim exec'd the daemon
        assert argv[-2:] == WRAPPER_ARGV  # the wrapper's options after libvirt's
        assert ["--shared-dir", "/srv/it-fleet/one"] in [argv[i:i + 2] for i in range(len(argv))]
        assert "--readonly" in argv and "--rlimit-nofile=2048" in argv
        assert info["problems"] == []
        # libvirt 11 probed the wrapper with --print-capabilities, then started it --shared-dir style
        calls = in_tree(lab2, SHIM_LOG).read_text().splitlines()
        assert calls[0].split() == ["--print-capabilities"], calls
        started = [c for c in calls if c.startswith("--fd=")]
        assert len(started) == 1 and "--shared-dir /srv/it-fleet/one" in started[0], calls
        assert started[0].split()[-2:] == WRAPPER_ARGV
        # the guest reads the host's file and cannot write: <readonly/>
        out = labctl.guest_ssh(RUN2_PORT, "mkdir -p /mnt/one && mount -t virtiofs one /mnt/one && "
                                          "cat /mnt/one/from-host.txt && (touch /mnt/one/x 2>&1 || true)", key=key)
        lines = out.stdout.splitlines()
        assert lines[0] == marker
        assert "Read-only file system" in lines[1], lines

        # an option change on the running share: defined, reported as needing a restart
        share, info = run2_share(run_playbook, [{**one, "cache": "always"}])
        assert share["changed"] is True and share["restart_required"] is True
        assert any("'one'" in r for r in share["restart_reasons"]), share["restart_reasons"]
        assert info["shares"][0]["cache"] == "always"

        # the daemon libvirt 11 picks for a share without <binary path>: from a vhost-user
        # descriptor the collection registers (40-... sorts before Debian's 50-virtiofsd.json)
        res = run_playbook("""
- name: Register a second daemon
  hosts: hypervisor2
  gather_facts: false
  tasks:
    - name: Install and register
      virtiofs.libvirt.virtiofsd:
        method: url
        url: "{{ it_url }}"
        checksum: "sha256:{{ it_sha }}"
        allow_http: true
        install_dir: /opt/it-fleet-vhost
        register_vhost_user: true
      register: it_reg
""", extra_vars={"it_url": lab["artifact_url"], "it_sha": lab["artifact_sha256"]})
        ok(res)
        reg = res.result("Install and register", "hypervisor2")
        assert reg["vhost_user_descriptor"].startswith("/etc/qemu/vhost-user/40-"), reg
        in_tree(lab2, "/srv/it-fleet/two").mkdir(parents=True, exist_ok=True)
        two = {"tag": "two", "source": "/srv/it-fleet/two"}
        share, report = run2_share(run_playbook, [{**one, "cache": "always"}, two], whole_report=True)
        assert share["changed"] is True
        by_tag = {s["tag"]: s for s in report["domains"][0]["shares"]}
        assert by_tag["two"]["attached"] is True, share["restart_reasons"]
        assert by_tag["two"]["virtiofsd"]["cmdline"][0] == "/opt/it-fleet-vhost/virtiofsd"
        # the collection's one descriptor lookup names the daemon libvirt itself started
        assert report["vhost_user_daemon"]["binary"] == by_tag["two"]["virtiofsd"]["cmdline"][0], report
        assert report["vhost_user_daemon"]["descriptor"] == reg["vhost_user_descriptor"], report
        labctl.guest_ssh(RUN2_PORT, "mkdir -p /mnt/two && mount -t virtiofs two /mnt/two && "
                                    "echo guest > /mnt/two/from-guest && umount /mnt/two", key=key)
        assert in_tree(lab2, "/srv/it-fleet/two/from-guest").read_text() == "guest\n"

        # live detach
        share, info = run2_share(run_playbook, [{**one, "cache": "always"}])
        assert share["changed"] is True
        assert [s["tag"] for s in info["shares"]] == ["one"]
        conn = libvirt.open(lab2["uri"])
        try:
            live = etree.fromstring(conn.lookupByName(RUN2).XMLDesc(0))
        finally:
            conn.close()
        assert [f.find("target").get("dir") for f in live.findall("devices/filesystem")] == ["one"]
    finally:
        labctl.destroy_guest(RUN2, hypervisor="hypervisor2")
        res = run_playbook("""
- name: Clean up hypervisor2
  hosts: hypervisor2
  gather_facts: false
  tasks:
    - name: Remove the registered daemon and its descriptor
      virtiofs.libvirt.virtiofsd:
        state: absent
        install_dir: /opt/it-fleet-vhost
    - name: Remove the test files
      ansible.builtin.file:
        path: "{{ item }}"
        state: absent
      loop: [/opt/it-fleet, /opt/it-fleet-vhost, /srv/it-fleet, /var/log/it-fleet-shim.log]
""")
        ok(res)
    assert not in_tree(lab2, "/etc/qemu/vhost-user").exists() or not any(
        p.name.startswith("40-") for p in in_tree(lab2, "/etc/qemu/vhost-user").iterdir())


# ---------------------------------------------------------------- fleet behaviour

FLEET_VARS = {
    "virtiofs_host_virtiofsd_method": "{{ 'url' if lab_debian_release | int < 13 else 'package' }}",
    "virtiofs_host_virtiofsd_allow_http": True,
    "virtiofs_host_virtiofsd_install_dir": "/opt/it-fleet-roll",
    "virtiofs_host_shares": [{"domain": "{{ it_domains[inventory_hostname] }}", "tag": "roll",
                              "source": "/srv/it-fleet-roll", "create_source": True}],
}


def fleet_vars(lab, domains: dict, **extra) -> dict:
    return {**FLEET_VARS, "virtiofs_host_virtiofsd_url": lab["artifact_url"],
            "virtiofs_host_virtiofsd_checksum": f"sha256:{lab['artifact_sha256']}",
            "it_domains": domains, **extra}


HOST_PLAY = """
- name: The fleet
  ansible.builtin.import_playbook: virtiofs.libvirt.host
"""

CLEANUP_PLAY = """
- name: Clean up the fleet
  hosts: hypervisors
  gather_facts: false
  tasks:
    - name: Remove the test installation and sources
      ansible.builtin.file:
        path: "{{ item }}"
        state: absent
      loop: [/opt/it-fleet-roll, /srv/it-fleet-roll]
"""


def _ns_libvirtd(labctl, lab2) -> list[int]:
    return [pid for pid, comm in labctl.hv2.ns_processes(lab2["init_pid"]) if comm == "libvirtd"]


def test_one_hypervisor_down_does_not_stop_the_other(run_playbook, lab, lab2, labctl, rust_package):
    domains = {"hypervisor": "it-fleet-c", "hypervisor2": "it-fleet-d"}
    env = {"ANSIBLE_STDOUT_CALLBACK": "default"}  # the recap operators read
    try:
        for host, name in domains.items():
            labctl.clone_guest(name, 0, start=False, hypervisor=host)
        labctl.hv2.stop_libvirtd(lab2["init_pid"], Path(lab2["tree"]))
        assert not _ns_libvirtd(labctl, lab2), "hypervisor2's libvirtd did not stop"

        res = run_playbook(HOST_PLAY, extra_vars=fleet_vars(lab, domains), env=env)
        assert res.rc != 0
        recap = dict(re.findall(r"^(\S+)\s+: (ok=.*)$", res.stdout, re.M))
        assert re.search(r"failed=0 ", recap["hypervisor"]) and not re.search(r"changed=0 ", recap["hypervisor"]), recap
        assert re.search(r"failed=1 ", recap["hypervisor2"]), recap
        out = res.stdout + res.stderr
        fatal = re.search(r"^(fatal|failed): \[hypervisor2\]", out, re.M)
        assert fatal, out[-4000:]
        assert "libvirt" in out[fatal.start():][:3000], out[fatal.start():][:3000]
        assert not re.search(r"^(fatal|failed): \[hypervisor\]", out, re.M)
        # hypervisor converged despite hypervisor2
        fs = inactive(lab["uri"], domains["hypervisor"]).findall("devices/filesystem")
        assert [f.find("target").get("dir") for f in fs] == ["roll"]

        # libvirtd back: the next run converges hypervisor2 and changes nothing on hypervisor
        labctl.hv2.start_daemons(lab2["init_pid"], Path(lab2["tree"]), labctl.run, "test", labctl.LabError,
                                 lambda _msg: None)
        res = run_playbook(HOST_PLAY, extra_vars=fleet_vars(lab, domains), env=env)
        assert res.rc == 0, res.stdout[-6000:]
        recap = dict(re.findall(r"^(\S+)\s+: (ok=.*)$", res.stdout, re.M))
        assert re.search(r"changed=0 ", recap["hypervisor"]) and re.search(r"failed=0 ", recap["hypervisor2"]), recap
        assert not re.search(r"changed=0 ", recap["hypervisor2"]), recap
        fs = inactive(lab2["uri"], domains["hypervisor2"]).findall("devices/filesystem")
        assert [f.find("target").get("dir") for f in fs] == ["roll"]
    finally:
        labctl.hv2.ensure_libvirtd(lab2["init_pid"], Path(lab2["tree"]), labctl.run, "test", labctl.LabError,
                                   lambda _msg: None)
        for host, name in domains.items():
            labctl.destroy_guest(name, hypervisor=host)
        ok(run_playbook(CLEANUP_PLAY))


def test_lab_inventory_is_a_fleet(lab, lab2):
    """The inventory tests and the demo use: two hypervisors, two guests, each guest on its own."""
    import yaml  # noqa: PLC0415

    inv = yaml.safe_load(Path(lab["inventory"]).read_text())["all"]["children"]
    hv = inv["hypervisors"]["hosts"]
    guests = inv["guests"]["hosts"]
    assert set(hv) == {"hypervisor", "hypervisor2"} and set(guests) == {"guest", "guest2"}
    assert (hv["hypervisor"]["lab_debian_release"], hv["hypervisor2"]["lab_debian_release"]) == (12, 13)
    assert guests["guest2"]["virtiofs_hypervisor"] == "hypervisor2"
    assert guests["guest2"]["virtiofs_domain"] == lab2["domain"] == hv["hypervisor2"]["lab_domain"]
    assert hv["hypervisor2"]["ansible_port"] == lab2["ssh_port"] != guests["guest2"]["ansible_port"]
    assert int(lab2["libvirt_version"].split(".")[0]) >= 10
