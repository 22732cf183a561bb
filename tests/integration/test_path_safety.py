# SPDX-License-Identifier: GPL-3.0-or-later
"""Files libvirt runs as root can only be changed by root (issue 12), on the real lab.

Each case makes one component weak (a 0777 directory, a directory owned by ``nobody``, a
group-writable binary), runs the module through ``ansible-playbook`` and checks that it is
refused with a message naming the weak path and the fix, and that nothing was changed (no
wrapper written, wrapper bytes equal, domain XML equal). A root-owned sticky 1777 parent
(like ``/tmp``) is accepted. Every mode and owner is restored in ``finally``.

Skips (with the reason) when the lab is not up.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import libvirt
import pytest

BASE = Path("/opt/it-pathlab")
DOMAIN = "it-pathlab-dom"
SSH_PORT = 2252  # never started
NOBODY = 65534
REFUSED = "can be changed by users other than root"

SHARE_PLAY = """
- name: Share
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Share
      virtiofs.libvirt.share:
        domain: "{{ it_domain }}"
        shares: "{{ it_shares }}"
      register: it_result
      ignore_errors: true
    - name: Info
      virtiofs.libvirt.share_info:
        domain: "{{ it_domain }}"
"""

INFO_PLAY = """
- name: Info
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Info
      virtiofs.libvirt.share_info:
        domain: "{{ it_domain }}"
"""

INSTALL_PLAY = """
- name: virtiofsd module
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Install
      virtiofs.libvirt.virtiofsd:
        method: url
        url: http://127.0.0.1:9/never-fetched.tar.xz
        checksum: "sha256:{{ '0' * 64 }}"
        member: virtiofsd
        allow_http: true
        install_dir: "{{ vf_dir }}"
"""


@pytest.fixture(scope="module")
def base():
    BASE.mkdir(mode=0o755, exist_ok=True)
    os.chown(BASE, 0, 0)
    BASE.chmod(0o755)
    yield BASE
    shutil.rmtree(BASE, ignore_errors=True)


@pytest.fixture(scope="module")
def rust_binary(base, copy_rust_binary):
    """Own copy of the lab's Rust virtiofsd in a root-only directory."""
    return copy_rust_binary(base / "good" / "virtiofsd")


def fresh_dir(path: Path, mode: int = 0o755) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.chown(path, 0, 0)
    path.chmod(mode)
    return path


def assert_refused(result: dict, weak: Path, fix: str) -> None:
    assert result.get("failed") is True, result
    assert result.get("changed") is False, result
    msg = result["msg"]
    assert REFUSED in msg, msg
    assert str(weak) in msg, msg
    assert f"Fix: {fix}" in msg, msg


def test_wrapper_dir_world_writable_is_refused(write_wrapper, base, rust_binary):
    weak = fresh_dir(base / "w0777", 0o777)
    wrapper = weak / "virtiofsd.sh"
    try:
        result = write_wrapper(wrapper, rust_binary, check_rc=False)
        assert_refused(result, weak, f"chmod go-w {weak}")
        assert "writable by group and others" in result["msg"]
        assert not wrapper.exists()
        assert sorted(os.listdir(weak)) == []  # no temporary file left either
    finally:
        weak.chmod(0o755)


def test_parent_owned_by_nobody_is_refused(write_wrapper, base, rust_binary):
    parent = fresh_dir(base / "nobody")
    child = fresh_dir(parent / "sub")
    wrapper = child / "virtiofsd.sh"
    os.chown(parent, NOBODY, NOBODY)
    try:
        result = write_wrapper(wrapper, rust_binary, check_rc=False)
        assert_refused(result, parent, f"chown root:root {parent}")
        assert f"owned by uid {NOBODY}, not root" in result["msg"]
        assert not wrapper.exists()
    finally:
        os.chown(parent, 0, 0)


def test_group_writable_binary_is_refused_and_wrapper_kept(write_wrapper, base, rust_binary, copy_rust_binary):
    wrapper = fresh_dir(base / "gw") / "virtiofsd.sh"
    first = write_wrapper(wrapper, rust_binary, check_rc=False)
    assert first.get("failed") is not True, first
    before = wrapper.read_bytes()
    other = Path(copy_rust_binary(base / "gw-bin" / "virtiofsd"))
    other.chmod(0o775)
    try:
        result = write_wrapper(wrapper, str(other), check_rc=False)
        assert_refused(result, other, f"chmod go-w {other}")
        assert "writable by group" in result["msg"]
        assert wrapper.read_bytes() == before
    finally:
        other.chmod(0o755)
    # restored: the same request is accepted (the check, not something else, refused it)
    again = write_wrapper(wrapper, str(other), check_rc=False)
    assert again.get("failed") is not True, again
    assert again["changed"] is True
    assert wrapper.read_bytes() != before


def test_sticky_root_parent_is_accepted(write_wrapper, base, rust_binary):
    sticky = fresh_dir(base / "sticky", 0o1777)
    inner = fresh_dir(sticky / "inner")
    wrapper = inner / "virtiofsd.sh"
    try:
        result = write_wrapper(wrapper, rust_binary, check_rc=False)
        assert result.get("failed") is not True, result
        assert result["changed"] is True
        assert wrapper.is_file()
        assert rust_binary in wrapper.read_text()
        st = wrapper.stat()
        assert st.st_uid == 0 and st.st_mode & 0o022 == 0
    finally:
        sticky.chmod(0o755)


def test_install_dir_weak_is_refused(run_playbook, base):
    weak = fresh_dir(base / "install-weak", 0o777)
    install_dir = weak / "bin"
    try:
        res = run_playbook(INSTALL_PLAY, extra_vars={"vf_dir": str(install_dir)})
        result = res.result("Install")
        assert_refused(result, weak, f"chmod go-w {weak}")
        assert "install_dir" in result["msg"]
        assert not install_dir.exists()
        assert os.listdir(weak) == []
    finally:
        weak.chmod(0o755)


@pytest.fixture
def domain(lab, labctl, base, rust_binary):
    """A defined, never started lab domain with one share on the good binary."""
    src = fresh_dir(base / "src")
    conn = libvirt.open(lab["uri"])

    def undefine():
        try:
            conn.lookupByName(DOMAIN).undefine()
        except libvirt.libvirtError:
            pass

    try:
        undefine()
        conn.defineXML(labctl.guest_xml(DOMAIN, SSH_PORT, str(base / "disk.qcow2"), lab, memory_mib=256,
                                        shared_memory=True,
                                        filesystems=[{"tag": "good", "source": str(src), "binary": rust_binary}]))
        yield conn, src
    finally:
        undefine()
        conn.close()


def xml_of(conn) -> str:
    return conn.lookupByName(DOMAIN).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def test_share_binary_in_weak_dir_is_refused_domain_unchanged(run_playbook, base, domain, copy_rust_binary):
    conn, src = domain
    weak = fresh_dir(base / "share-weak")
    binary = Path(copy_rust_binary(weak / "virtiofsd"))
    weak.chmod(0o777)
    before = xml_of(conn)
    try:
        res = run_playbook(SHARE_PLAY, extra_vars={
            "it_domain": DOMAIN,
            "it_shares": [{"tag": "weak", "source": str(src), "binary_path": str(binary)}]})
        result = res.result("Share")
        assert_refused(result, weak, f"chmod go-w {weak}")
        assert str(binary) in result["msg"]
        assert xml_of(conn) == before
    finally:
        weak.chmod(0o755)


def test_share_info_reports_binary_untrusted(run_playbook, base, domain, rust_binary):
    conn, src = domain
    good_dir = Path(rust_binary).parent

    def problems() -> list[dict]:
        res = run_playbook(INFO_PLAY, extra_vars={"it_domain": DOMAIN})
        assert res.rc == 0, res.stdout[-4000:] + res.stderr[-2000:]
        return res.result("Info")["domains"][0]["problems"]

    assert [p for p in problems() if p["code"] == "binary_untrusted"] == []
    before = xml_of(conn)
    good_dir.chmod(0o777)
    try:
        found = [p for p in problems() if p["code"] == "binary_untrusted"]
    finally:
        good_dir.chmod(0o755)
    assert len(found) == 1, found
    assert found[0]["share"] == "good"
    assert REFUSED in found[0]["msg"] and str(good_dir) in found[0]["msg"]
    assert f"chmod go-w {good_dir}" in found[0]["msg"]
    assert xml_of(conn) == before  # share_info only reads
