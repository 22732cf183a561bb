# SPDX-License-Identifier: GPL-3.0-or-later
"""virtiofs.libvirt.share and share_info on the real lab (libvirt 9.0, QEMU 7.2, TCG guests).

* the Ansible target ``targets/share`` (add/update/remove, check mode, diff, idempotence,
  exclusive lists, memory backing, xml_file, share_info problems, every error with its message
  and ``virsh dumpxml --inactive`` unchanged) on domains that are never started;
* a running TCG guest: ``restart_required`` when the running configuration differs (no shared
  memory yet, ``live=false``, changed options), a full stop/start after which the guest boots with
  the share and ``mount -t virtiofs`` works both ways, live attach of a second share and live
  detach, ``share_info`` finding libvirt's virtiofsd process and its log;
* two ``ansible-playbook`` processes patching the same domain at the same time: both keep their
  shares.

Skips (with the reason) when the lab is not up. Domains are called ``it-share-*``, SSH ports
2230-2239; everything is removed afterwards.
"""
from __future__ import annotations

import threading
import uuid
from pathlib import Path

import libvirt
import pytest
from lxml import etree

BASE = Path("/opt/it-share-py")
BINARY = BASE / "virtiofsd"
SRC = Path("/srv/it-share-py")
RUN_DOMAIN = "it-share-run"
RUN_PORT = 2230
CONC_DOMAIN = "it-share-conc"
CONC_PORT = 2231


@pytest.fixture(scope="module")
def rust_binary(copy_rust_binary):
    """Own copy of the lab's Rust virtiofsd (tests must not touch the lab's)."""
    return copy_rust_binary(BINARY)


def share_play(domain: str) -> str:
    """A playbook running the share module once (task "Share") and share_info (task "Info")."""
    return f"""
- name: Share
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Share
      virtiofs.libvirt.share:
        domain: {domain}
        shares: "{{{{ it_shares }}}}"
        live: "{{{{ it_live | default(omit) }}}}"
        exclusive: "{{{{ it_exclusive | default(false) }}}}"
      register: it_result
    - name: Info
      virtiofs.libvirt.share_info:
        domain: {domain}
"""


def run_share(run_playbook, domain: str, shares: list[dict], live=None, exclusive=False):
    extra = {"it_shares": shares, "it_exclusive": exclusive}
    if live is not None:
        extra["it_live"] = live
    res = run_playbook(share_play(domain), extra_vars=extra)
    assert res.rc == 0, res.stdout[-6000:] + res.stderr[-2000:]
    return res.result("Share"), res.result("Info")["domains"][0]


def inactive_xml(uri: str, name: str) -> str:
    conn = libvirt.open(uri)
    try:
        return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()


def tags_of(xml: str) -> list[str]:
    root = etree.fromstring(xml.encode())
    return [fs.find("target").get("dir") for fs in root.iterfind("devices/filesystem")
            if fs.find("driver") is not None and fs.find("driver").get("type") == "virtiofs"]


def test_target(run_target, lab):
    res = run_target("share")
    errors = res.result("Each error")
    assert len(errors["results"]) >= 18
    for item in errors["results"]:
        assert item["item"]["msg"] in item["msg"], item["item"]["name"]
        assert item["changed"] is False


def test_running_domain(run_playbook, lab, labctl, rust_binary):
    uri = lab["uri"]
    one, two, three = SRC / "one", SRC / "two", SRC / "three"
    for d in (one, two, three):
        d.mkdir(parents=True, exist_ok=True)
    marker = uuid.uuid4().hex
    (one / "from-host.txt").write_text(marker + "\n")
    (two / "two.txt").write_text("two\n")
    for stale in (one / "from-guest.txt",):
        if stale.exists():
            stale.unlink()
    share_one = {"tag": "one", "source": str(one), "binary_path": rust_binary, "cache": "always"}
    share_two = {"tag": "two", "source": str(two), "binary_path": rust_binary}
    try:
        # a running guest without shared memory
        labctl.clone_guest(RUN_DOMAIN, RUN_PORT, shared_memory=False)

        # 1. live=auto cannot attach: the running guest has no shared memory
        result, info = run_share(run_playbook, RUN_DOMAIN, [share_one], live="auto")
        assert result["changed"] is True
        assert "add <memoryBacking><source type='memfd'/> (shared memory for virtio-fs)" in result["actions"]
        assert not any(a.startswith("attach") for a in result["actions"])
        assert result["restart_required"] is True
        assert any("no shared memory" in r for r in result["restart_reasons"]), result["restart_reasons"]
        assert info["active"] is True
        assert info["shares"][0]["tag"] == "one" and info["shares"][0]["attached"] is False
        assert "not_attached" in [p["code"] for p in info["problems"]]

        # the same run again: nothing to define, still needs the restart
        result, _info = run_share(run_playbook, RUN_DOMAIN, [share_one], live="auto")
        assert result["changed"] is False and result["restart_required"] is True

        # 2. full stop and start: the guest boots with the share and mounts it
        conn = libvirt.open(uri)
        try:
            dom = conn.lookupByName(RUN_DOMAIN)
            dom.destroy()
            dom.create()
        finally:
            conn.close()
        labctl.wait_ssh(RUN_PORT)
        out = labctl.guest_ssh(RUN_PORT, "mkdir -p /mnt/one && mount -t virtiofs one /mnt/one && "
                                         "cat /mnt/one/from-host.txt && echo guest-wrote > /mnt/one/from-guest.txt")
        assert out.stdout.strip() == marker
        assert (one / "from-guest.txt").read_text() == "guest-wrote\n"

        result, info = run_share(run_playbook, RUN_DOMAIN, [share_one], live="auto")
        assert result["changed"] is False and result["restart_required"] is False
        assert result["restart_reasons"] == []
        share = info["shares"][0]
        assert share["attached"] is True and share["live_alias"]
        proc = share["virtiofsd"]
        assert proc["running"] is True and proc["pid"] > 0
        assert proc["exe"] == rust_binary
        assert proc["cmdline"][0] == rust_binary and f"source={one}" in " ".join(proc["cmdline"])
        assert proc["pid_file"].startswith("/run/libvirt/qemu/") and proc["pid_file"].endswith(
            f"-{RUN_DOMAIN}-{share['live_alias']}-fs.pid")
        assert proc["log_path"] == f"/var/log/libvirt/qemu/{RUN_DOMAIN}-{share['live_alias']}-virtiofsd.log"
        assert proc["log_exists"] is True
        assert info["problems"] == []

        # 3. live attach of a second share fails: the running q35 guest has no free PCI slot
        result, info = run_share(run_playbook, RUN_DOMAIN, [share_one, share_two], live=True)
        assert result["changed"] is True
        assert result["actions"] == [f"add share 'two' (source {two})"]
        assert result["restart_required"] is True
        assert result["restart_reasons"] == [
            "share 'two' cannot be attached live: internal error: No more available PCI slots"]
        assert [s["attached"] for s in info["shares"]] == [True, False]

        # 4. the test gives the definition two more root ports (the module never touches controllers)
        #    and restarts: the guest boots with both shares
        conn = libvirt.open(uri)
        try:
            dom = conn.lookupByName(RUN_DOMAIN)
            dom.destroy()
            root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
            devices = root.find("devices")
            for _port in range(2):
                etree.SubElement(devices, "controller", type="pci", model="pcie-root-port")
            conn.defineXML(etree.tostring(root, encoding="unicode")).create()
        finally:
            conn.close()
        labctl.wait_ssh(RUN_PORT)
        out = labctl.guest_ssh(RUN_PORT, "mkdir -p /mnt/one /mnt/two && mount -t virtiofs one /mnt/one && "
                                         "mount -t virtiofs two /mnt/two && cat /mnt/two/two.txt /mnt/one/from-host.txt")
        assert out.stdout.split() == ["two", marker]
        result, info = run_share(run_playbook, RUN_DOMAIN, [share_one, share_two], live=True)
        assert result["changed"] is False and result["restart_required"] is False, result["restart_reasons"]

        # 5. live attach of a third share (live given as a YAML boolean)
        (three / "three.txt").write_text("three\n")
        share_three = {"tag": "three", "source": str(three), "binary_path": rust_binary}
        result, info = run_share(run_playbook, RUN_DOMAIN, [share_three], live=True)
        assert result["changed"] is True
        assert result["actions"] == [f"add share 'three' (source {three})", "attach share 'three' to the running domain"], (
            result["restart_reasons"])
        assert result["restart_required"] is False
        assert {s["tag"]: s["attached"] for s in info["shares"]} == {"one": True, "two": True, "three": True}
        out = labctl.guest_ssh(RUN_PORT, "mkdir -p /mnt/three && mount -t virtiofs three /mnt/three && "
                                         "cat /mnt/three/three.txt")
        assert out.stdout.strip() == "three"
        result, _info = run_share(run_playbook, RUN_DOMAIN, [share_three], live=True)
        assert result["changed"] is False and result["restart_required"] is False

        # 6. live=false: the definition changes, the running guest does not
        four = SRC / "four"
        four.mkdir(parents=True, exist_ok=True)
        result, info = run_share(run_playbook, RUN_DOMAIN, [{"tag": "four", "source": str(four)}])
        assert result["changed"] is True and result["restart_required"] is True
        assert result["restart_reasons"] == ["share 'four' is not attached to the running domain (live=false)"]
        result, _info = run_share(run_playbook, RUN_DOMAIN, [{"tag": "four", "state": "absent"}])
        assert result["changed"] is True and result["restart_required"] is False

        # 7. changed options cannot be applied live
        result, _info = run_share(run_playbook, RUN_DOMAIN, [dict(share_one, cache="none")], live="auto")
        assert result["changed"] is True and result["restart_required"] is True
        assert result["restart_reasons"] == [
            "share 'one' runs with other options (cache): libvirt cannot change a virtio-fs device of a running domain"]

        # 8. live detach after the guest unmounted the tag
        labctl.guest_ssh(RUN_PORT, "umount /mnt/three")
        result, info = run_share(run_playbook, RUN_DOMAIN, [{"tag": "three", "state": "absent"}], live="auto")
        assert result["changed"] is True
        assert result["actions"] == ["remove share 'three'", "detach share 'three' from the running domain"]
        assert result["restart_required"] is False, result["restart_reasons"]
        conn = libvirt.open(uri)
        try:
            live_xml = conn.lookupByName(RUN_DOMAIN).XMLDesc(0)
        finally:
            conn.close()
        assert tags_of(live_xml) == ["one", "two"]
        assert tags_of(inactive_xml(uri, RUN_DOMAIN)) == ["one", "two"]
        out = labctl.guest_ssh(RUN_PORT, "cat /mnt/one/from-host.txt")
        assert out.stdout.strip() == marker
    finally:
        labctl.destroy_guest(RUN_DOMAIN)


def test_concurrent_runs(run_playbook, lab, labctl):
    """Two ansible-playbook processes patch the same domain at once; neither loses a share.

    Each playbook runs the share module for COUNT in-memory hosts (all this hypervisor) with as
    many forks, so 2 x COUNT module processes read, patch and define the same domain at nearly the
    same moment. Without the per-domain lock and the re-read before define, shares get lost.
    """
    uri = lab["uri"]
    count = 10
    for side in ("p", "q"):
        for i in range(count):
            (SRC / f"{side}{i}").mkdir(parents=True, exist_ok=True)

    def playbook(side: str) -> str:
        return f"""
- name: Hosts for concurrent {side}
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Add in-memory hosts
      ansible.builtin.add_host:
        name: "it-conc-{side}{{{{ item }}}}"
        groups: it_conc
        ansible_connection: local
        ansible_python_interpreter: /usr/bin/python3
        it_tag: "{side}{{{{ item }}}}"
      loop: "{{{{ range({count}) | list }}}}"

- name: Concurrent {side}
  hosts: it_conc
  gather_facts: false
  tasks:
    - name: Share
      virtiofs.libvirt.share:
        domain: {CONC_DOMAIN}
        tag: "{{{{ it_tag }}}}"
        source: "{SRC}/{{{{ it_tag }}}}"
"""

    results: dict[str, object] = {}
    try:
        labctl.clone_guest(CONC_DOMAIN, CONC_PORT, start=False, wait=False)
        threads = [
            threading.Thread(target=lambda s=side: results.__setitem__(
                s, run_playbook(playbook(s), env={"ANSIBLE_FORKS": str(count)})))
            for side in ("p", "q")
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for side in ("p", "q"):
            res = results[side]
            assert res.rc == 0, res.stdout[-6000:] + res.stderr[-2000:]
            for i in range(count):
                result = res.result("Share", host=f"it-conc-{side}{i}")
                assert result["changed"] is True, result
        tags = tags_of(inactive_xml(uri, CONC_DOMAIN))
        assert sorted(tags) == sorted([f"p{i}" for i in range(count)] + [f"q{i}" for i in range(count)])
    finally:
        labctl.destroy_guest(CONC_DOMAIN)


ISO_DOMAINS = ("it-share-iso-a", "it-share-iso-b", "it-share-iso-c")
ISO_PORTS = (2232, 2233, 2234)


def test_domains_form_failure_isolation(run_playbook, lab, labctl):
    """The domains form: a lock held on one domain fails that domain only.

    Another run holds the per-domain lock of the middle domain (the test process takes it with
    the collection's own lock function). With ``lock_timeout: 1`` the run converges the first and
    last domain, reports the middle one as failed with the lock named, fails the task, and leaves
    the middle definition byte-identical. Once the lock is free the next run converges it and
    defines nothing else.
    """
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._lock import domain_lock

    uri = lab["uri"]
    for name in ISO_DOMAINS:
        (SRC / name).mkdir(parents=True, exist_ok=True)
    play = """
- name: Domains form
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Share
      virtiofs.libvirt.share:
        domains: "{{ it_domains }}"
        lock_timeout: 1
      register: it_result
      ignore_errors: true
"""
    extra = {"it_domains": [{"name": n, "shares": [{"tag": "iso", "source": str(SRC / n)}]}
                            for n in ISO_DOMAINS]}
    try:
        for name, port in zip(ISO_DOMAINS, ISO_PORTS):
            labctl.clone_guest(name, port, start=False, wait=False)
        conn = libvirt.open(uri)
        try:
            held_uuid = conn.lookupByName(ISO_DOMAINS[1]).UUIDString()
        finally:
            conn.close()
        before = {n: inactive_xml(uri, n) for n in ISO_DOMAINS}

        with domain_lock(uri, held_uuid, timeout=5):
            res = run_playbook(play, extra_vars=extra)
        result = res.result("Share")
        assert result["failed"] is True, result
        assert result["msg"].startswith("1 of 3 domains failed"), result["msg"]
        doms = result["domains"]
        assert [doms[n]["failed"] for n in ISO_DOMAINS] == [False, True, False]
        assert [doms[n]["changed"] for n in ISO_DOMAINS] == [True, False, True]
        assert "holds the lock" in doms[ISO_DOMAINS[1]]["msg"], doms[ISO_DOMAINS[1]]
        assert held_uuid in doms[ISO_DOMAINS[1]]["msg"]
        assert inactive_xml(uri, ISO_DOMAINS[1]) == before[ISO_DOMAINS[1]]
        for n in (ISO_DOMAINS[0], ISO_DOMAINS[2]):
            assert tags_of(inactive_xml(uri, n)) == ["iso"], n
        assert result["changed"] is True

        # the lock is free: the next run converges the held domain and defines nothing else
        after_first = {n: inactive_xml(uri, n) for n in (ISO_DOMAINS[0], ISO_DOMAINS[2])}
        res = run_playbook(play, extra_vars=extra)
        result = res.result("Share")
        assert result.get("failed") is not True, result
        assert [result["domains"][n]["changed"] for n in ISO_DOMAINS] == [False, True, False]
        assert tags_of(inactive_xml(uri, ISO_DOMAINS[1])) == ["iso"]
        for n, xml in after_first.items():
            assert inactive_xml(uri, n) == xml
    finally:
        for name in ISO_DOMAINS:
            labctl.destroy_guest(name)
