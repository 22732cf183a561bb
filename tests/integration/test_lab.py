# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab itself: a TCG domain defined on qemu:///system boots and answers SSH; Ansible
reaches both the hypervisor and the guest; the virtiofsd sources are served on loopback."""
from __future__ import annotations

import hashlib
import urllib.request
import zipfile
import io

import libvirt
from lxml import etree

SMOKE = "it-lab-smoke"
PORT = 2229


def test_tcg_guest_defines_boots_and_answers_ssh(lab, labctl):
    try:
        info = labctl.clone_guest(SMOKE, PORT)
        conn = libvirt.open(lab["uri"])
        try:
            dom = conn.lookupByName(SMOKE)
            assert dom.isActive() == 1
            xml = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            assert xml.get("type") == "qemu"  # TCG, not KVM
        finally:
            conn.close()
        out = labctl.guest_ssh(info["ssh_port"], "cat /etc/debian_version; python3 -c 'print(6*7)'; "
                                                 "modinfo -F name virtiofs").stdout.split()
        assert out[0].startswith("12.")
        assert out[1] == "42"
        assert out[2] == "virtiofs"  # the guest kernel can mount virtio-fs
    finally:
        labctl.destroy_guest(SMOKE)
    conn = libvirt.open(lab["uri"])
    try:
        assert SMOKE not in [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()


def test_ansible_reaches_hypervisor_and_guest(run_playbook):
    res = run_playbook("""
- name: Facts from both lab hosts
  hosts: all
  gather_facts: false
  tasks:
    - name: Kernel
      ansible.builtin.command: uname -r
      changed_when: false
""")
    assert res.rc == 0, res.stderr + res.stdout[-2000:]
    assert set(res.tasks("Kernel")[0]) == {"hypervisor", "guest"}
    assert res.result("Kernel", "guest")["stdout"].endswith("-amd64")


def test_artifact_server_serves_release_zip_with_upstream_layout(lab):
    data = urllib.request.urlopen(lab["artifact_url"], timeout=30).read()
    assert lab["artifact_url"].startswith("http://127.0.0.1:")
    assert hashlib.sha256(data).hexdigest() == lab["artifact_sha256"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert "target/x86_64-unknown-linux-musl/release/virtiofsd" in zf.namelist()
    with open(lab["artifact_access_log"]) as f:
        assert lab["artifact_file"] in f.read()
