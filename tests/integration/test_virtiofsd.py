# SPDX-License-Identifier: GPL-3.0-or-later
"""virtiofs.libvirt.virtiofsd on the real lab.

* the Ansible target ``targets/virtiofsd`` (url install from the lab's loopback artifact server
  with the access log proving that a second run downloads nothing; failures leaving the
  previous binary byte-identical; legacy C daemon detection and vhost-user registration;
  ``package`` on Debian 12/13; an offline cargo build from the lab's crate registry; removal);
* archives this test serves itself on loopback: a tar.xz holding the lab's real Rust binary
  (installs), and a zip holding Debian 12's C daemon (refused, previous binary untouched).

Skips (with the reason) when the lab is not up.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import shutil
import subprocess
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

MEMBER = "target/x86_64-unknown-linux-musl/release/virtiofsd"
C_DAEMON = Path("/usr/lib/qemu/virtiofsd")
INSTALL_DIR = Path("/opt/it-virtiofsd-archives")

PLAY = """
- name: virtiofsd module
  hosts: hypervisor
  gather_facts: false
  tasks:
    - name: Install
      virtiofs.libvirt.virtiofsd:
        method: url
        url: "{{ vf_url }}"
        checksum: "{{ vf_checksum }}"
        member: "{{ vf_member }}"
        allow_http: true
        install_dir: "{{ vf_dir }}"
"""


def test_target(run_target, lab):
    res = run_target("virtiofsd", timeout=2400)
    # the cases really ran (a skipped include would also give rc 0)
    assert res.result("Install")["changed"] is True
    assert res.result("Install again")["changed"] is False
    assert res.result("A checksum mismatch fails")["failed"] is True
    assert res.result("Build offline from the registry")["changed"] is True
    assert res.result("Build again")["changed"] is False
    if lab["debian_release"] == 12:
        assert "Debian 12 has none" in res.result("Look for the Rust package binary")["msg"]
    for d in ("/opt/it-virtiofsd-url", "/opt/it-virtiofsd-src", "/opt/it-virtiofsd-vhost-user"):
        assert not Path(d).exists(), f"{d} left behind"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requests: list = []

    def log_message(self, format, *args):  # noqa: A002 - base class signature
        self.requests.append(self.path)


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server over tmp_path/www; yields (base_url, www_dir, request_log)."""
    www = tmp_path / "www"
    www.mkdir()
    log: list = []
    handler = functools.partial(type("H", (_Quiet,), {"requests": log}), directory=str(www))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", www, log
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def install_dir():
    shutil.rmtree(INSTALL_DIR, ignore_errors=True)
    yield INSTALL_DIR
    shutil.rmtree(INSTALL_DIR, ignore_errors=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _install(run_playbook, url: str, archive: Path, member: str = MEMBER, directory: Path = INSTALL_DIR):
    return run_playbook(PLAY, extra_vars={
        "vf_url": url, "vf_checksum": f"sha256:{_sha(archive)}", "vf_member": member, "vf_dir": str(directory),
    })


def test_tar_xz_and_c_daemon_zip(run_playbook, lab, server, install_dir):
    base, www, log = server
    rust = Path(lab["virtiofsd_binary"])

    # a tar.xz with "./" prefixed members, like many release tarballs
    txz = www / "virtiofsd.tar.xz"
    with tarfile.open(txz, "w:xz") as tf:
        tf.add(rust, arcname=f"./virtiofsd-{lab['crate_version']}/virtiofsd")
        readme = f"virtiofsd {lab['crate_version']}\n".encode()
        info = tarfile.TarInfo(f"./virtiofsd-{lab['crate_version']}/README")
        info.size = len(readme)
        tf.addfile(info, io.BytesIO(readme))
    res = _install(run_playbook, f"{base}/virtiofsd.tar.xz", txz, member=f"virtiofsd-{lab['crate_version']}/virtiofsd")
    assert res.rc == 0, res.stdout[-4000:] + res.stderr[-2000:]
    out = res.result("Install")
    assert out["changed"] is True
    assert out["version"] == lab["crate_version"]
    binary = install_dir / "virtiofsd"
    assert binary.read_bytes() == rust.read_bytes()
    assert log == ["/virtiofsd.tar.xz"]
    before = _sha(binary)

    # the C daemon in upstream's layout: refused, the Rust binary stays
    assert C_DAEMON.exists(), "Debian's qemu-system-common C virtiofsd is part of the lab"
    czip = www / "c-daemon.zip"
    with zipfile.ZipFile(czip, "w", zipfile.ZIP_DEFLATED) as zf:
        zi = zipfile.ZipInfo(MEMBER)
        zi.external_attr = 0o100755 << 16
        zf.writestr(zi, C_DAEMON.read_bytes())
    res = _install(run_playbook, f"{base}/c-daemon.zip", czip)
    assert res.rc != 0
    out = res.result("Install")
    assert out["failed"] is True and out["changed"] is False
    assert "is not the Rust virtiofsd" in out["msg"]
    assert "legacy C virtiofsd" in out["msg"]
    assert log == ["/virtiofsd.tar.xz", "/c-daemon.zip"]
    assert _sha(binary) == before
    proc = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == f"virtiofsd {lab['crate_version']}"
    assert sorted(p.name for p in install_dir.iterdir()) == [".virtiofsd.manifest.json", "virtiofsd"]
