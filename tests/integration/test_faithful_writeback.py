# SPDX-License-Identifier: GPL-3.0-or-later
"""Faithful write-back on the real lab (issue 12).

* A domain whose definition has a ``<metadata>`` with elements of two foreign namespaces, a
  ``qemu:`` namespace on the root, comments inside ``<devices>``, attributes in an unusual order,
  a description with escaped characters and non-ASCII text is defined on the lab libvirtd. A share
  is added with ``virtiofs.libvirt.share`` through ``ansible-playbook``: libvirt's definition
  (``XMLDesc``) outside the virtio-fs ``<filesystem>`` and ``<memoryBacking>`` is canonically
  equal (C14N 2.0) to the one before, and the share is there. A second run changes nothing.
* An ``xml_file`` with an internal DTD subset that declares an entity is refused with the message
  naming ``xmllint --noent --dropdtd``; its bytes are unchanged.

Skips (with the reason) when the lab is not up. Domain ``it-faithful`` (never started); files in
/srv/it-faithful; everything is removed afterwards.
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import libvirt
import pytest
from lxml import etree

DOMAIN = "it-faithful"
SRC = Path("/srv/it-faithful")
TAG = "faithful"

DOMAIN_XML = f"""<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0' type='qemu'>
  <name>{DOMAIN}</name>
  <uuid>{uuid.uuid4()}</uuid>
  <title>faithful \u00e9crit</title>
  <description>a &lt;b&gt; &amp; c \u2013 kept as it is</description>
  <metadata>
    <app1:inventory xmlns:app1='http://example.org/app1/1.0' zeta='last' alpha='first'>
      <app1:owner team='storage'>ops</app1:owner>
      <app1:empty/>
    </app1:inventory>
    <app2:note xmlns:app2='urn:example:app2'>free text with  two spaces</app2:note>
  </metadata>
  <memory unit='KiB'>262144</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type machine='q35' arch='x86_64'>hvm</type>
    <boot dev='hd'/>
  </os>
  <clock offset='utc'/>
  <devices>
    <!-- a comment inside devices -->
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller model='pcie-root' index='0' type='pci'/>
    <!-- spare root ports: adding a device needs no new controller -->
    <controller type='pci' model='pcie-root-port'/>
    <controller type='pci' model='pcie-root-port'/>
    <controller type='pci' model='pcie-root-port'/>
    <serial type='pty'><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
  <seclabel relabel='no' model='dac' type='static'>
    <label>+0:+0</label>
  </seclabel>
  <qemu:commandline>
    <qemu:arg value='-msg'/>
    <qemu:arg value='timestamp=on'/>
  </qemu:commandline>
</domain>
"""

SHARE_PLAY = """
- name: Faithful
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Share
      virtiofs.libvirt.share:
        domain: "{{ it_domain | default(omit) }}"
        xml_file: "{{ it_file | default(omit) }}"
        tag: "{{ it_tag }}"
        source: "{{ it_source }}"
      ignore_errors: true
"""


def inactive_xml(uri: str) -> bytes:
    conn = libvirt.open(uri)
    try:
        return conn.lookupByName(DOMAIN).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode()
    finally:
        conn.close()


def outside_the_share(xml: bytes) -> str:
    """C14N 2.0 of a definition without its virtio-fs filesystems and its memoryBacking."""
    root = etree.fromstring(xml)
    for fs in root.findall("devices/filesystem"):
        if fs.find("driver") is not None and fs.find("driver").get("type") == "virtiofs":
            fs.getparent().remove(fs)
    for mb in root.findall("memoryBacking"):
        root.remove(mb)
    return etree.tostring(root, method="c14n2", strip_text=True).decode()


def share_of(xml: bytes) -> list[tuple[str | None, str | None]]:
    root = etree.fromstring(xml)
    return [(fs.find("source").get("dir"), fs.find("driver").get("type"))
            for fs in root.iterfind("devices/filesystem") if fs.find("target").get("dir") == TAG]


@pytest.fixture
def domain(lab):
    SRC.mkdir(parents=True, exist_ok=True)
    conn = libvirt.open(lab["uri"])
    try:
        conn.defineXML(DOMAIN_XML)
    finally:
        conn.close()
    yield lab["uri"]
    conn = libvirt.open(lab["uri"])
    try:
        conn.lookupByName(DOMAIN).undefine()
    finally:
        conn.close()
    shutil.rmtree(SRC, ignore_errors=True)


def test_share_keeps_everything_else_of_the_definition(run_playbook, domain):
    before = inactive_xml(domain)
    assert b"http://example.org/app1/1.0" in before and b"urn:example:app2" in before  # libvirt kept them
    assert share_of(before) == []
    res = run_playbook(SHARE_PLAY, extra_vars={"it_domain": DOMAIN, "it_tag": TAG, "it_source": str(SRC)})
    result = res.result("Share")
    assert result.get("failed") is not True and result["changed"] is True, result
    after = inactive_xml(domain)
    assert share_of(after) == [(str(SRC), "virtiofs")]
    assert etree.fromstring(after).find("memoryBacking/access").get("mode") == "shared"
    assert outside_the_share(after) == outside_the_share(before)

    again = run_playbook(SHARE_PLAY, extra_vars={"it_domain": DOMAIN, "it_tag": TAG, "it_source": str(SRC)})
    assert again.result("Share")["changed"] is False
    assert inactive_xml(domain) == after


def test_xml_file_with_a_dtd_entity_is_refused_and_unchanged(run_playbook, domain):
    path = SRC / "with-entity.xml"
    body = DOMAIN_XML.replace("kept as it is", "&kept;")
    data = ("<?xml version='1.0' encoding='UTF-8'?>\n"
            "<!DOCTYPE domain [\n  <!ENTITY kept \"kept as it is\">\n]>\n" + body).encode()
    path.write_bytes(data)
    res = run_playbook(SHARE_PLAY, extra_vars={"it_file": str(path), "it_tag": TAG, "it_source": str(SRC)})
    result = res.result("Share")
    assert result.get("failed") is True and result.get("changed") is False, result
    msg = result["msg"]
    assert "declares DTD entities (kept)" in msg, msg
    assert "xmllint --noent --dropdtd" in msg, msg
    assert path.read_bytes() == data
    assert sorted(p.name for p in SRC.iterdir()) == ["with-entity.xml"]  # no temporary file
