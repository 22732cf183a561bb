# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The installer's test world: real archives, real files and real (scripted) daemons in tmp_path.

The "daemons" are small shell scripts that answer --version/--help/--print-capabilities like
the Rust or the C virtiofsd; downloads go through a fake ``fetch`` that serves bytes and counts
requests; cargo is a script that writes a daemon where cargo would. Used by test__install.py,
test__archive.py, test__download.py, test__cargo.py and test__vhost_user.py (the ``lab`` fixture
is in conftest.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _install as I

MEMBER = I.DEFAULT_MEMBER
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 57 + b"payload"


def rust_script(version: str = "1.13.2", features=("migrate-precopy", "separate-options")) -> bytes:
    caps = json.dumps({"type": "fs", "features": list(features)}, indent=2)
    return (
        "#!/bin/sh\n"
        'case "$1" in\n'
        f'  --version|-V) echo "virtiofsd {version}";;\n'
        "  --help) printf 'Usage: virtiofsd [OPTIONS]\\n\\nOptions:\\n"
        "      --shared-dir <shared-dir>\\n      --cache <cache>\\n"
        "  -h, --help\\n';;\n"
        f"  --print-capabilities) cat <<'EOF'\n{caps}\nEOF\n;;\n"
        "  *) exit 2;;\n"
        "esac\n"
    ).encode()


C_SCRIPT = (
    "#!/bin/sh\n"
    'case "$1" in\n'
    "  --version|-V) echo 'virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)';"
    " echo 'Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers';;\n"
    "  --help) printf 'usage: virtiofsd [options]\\n    --socket-path=PATH         path\\n';;\n"
    "  --print-capabilities) echo '{\"type\": \"fs\"}';;\n"
    "esac\n"
).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(path: Path, members: dict) -> bytes:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zi = zipfile.ZipInfo(name)
            zi.external_attr = 0o100755 << 16
            zf.writestr(zi, data)
    return path.read_bytes()


def make_tar(path: Path, members: dict, mode: str = "w:gz") -> bytes:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            if isinstance(data, tuple):  # ("symlink", target)
                ti.type = tarfile.SYMTYPE
                ti.linkname = data[1]
                tf.addfile(ti)
                continue
            ti.size = len(data)
            ti.mode = 0o755
            tf.addfile(ti, io.BytesIO(data))
    return path.read_bytes()


def write_exec(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o755)
    return path


def real_run(argv, cwd=None, environ_update=None):
    env = dict(os.environ, **(environ_update or {}))
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return p.returncode, p.stdout, p.stderr


class FakeResponse(io.BytesIO):
    pass


class Server:
    """Fake ``fetch``: serves registered URLs, records every request."""

    def __init__(self):
        self.files = {}
        self.requests = []

    def add(self, url: str, data: bytes, status: int = 200, final_url=None):
        self.files[url] = (data, status, final_url)

    def fetch(self, url):
        self.requests.append(url)
        if url not in self.files:
            return None, {"status": -1, "msg": "Request failed: <urlopen error [Errno 111] Connection refused>", "url": url}
        data, status, final = self.files[url]
        if status != 200:
            return None, {"status": status, "msg": "HTTP Error 404: Not Found", "url": url}
        return FakeResponse(data), {"status": 200, "msg": "OK", "url": final or url}


class Lab:
    """A tmp_path world: install dir, vhost-user dirs, package paths, fake server."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path
        self.install_dir = tmp_path / "opt" / "virtiofsd-rust"
        self.share = tmp_path / "usr-share-qemu-vhost-user"
        self.etc = tmp_path / "etc-qemu-vhost-user"
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir()
        self.server = Server()
        self.warnings = []
        self.attrs = []
        self.moves = []
        self.runs = []
        self.package_paths = [str(tmp_path / "usr/libexec/virtiofsd"), str(tmp_path / "usr/lib/qemu/virtiofsd")]
        libs = tmp_path / "libs"
        libs.mkdir()
        (libs / "libseccomp.so").write_bytes(b"")
        (libs / "libcap-ng.so").write_bytes(b"")
        self.lib_dirs = [str(libs)]
        self.cargo = None
        self.os_family = "Debian"
        self.distribution_major_version = "12"

    def host(self, check_mode=False) -> I.Host:
        def run(argv, cwd=None, environ_update=None):
            self.runs.append(list(argv))
            return real_run(argv, cwd, environ_update)

        def move(src, dest):
            self.moves.append((src, dest))
            os.replace(src, dest)

        def set_attrs(path, mode):
            self.attrs.append((path, mode))
            if check_mode:
                return False
            before = stat.S_IMODE(os.stat(path).st_mode)
            os.chmod(path, mode)
            return before != mode

        return I.Host(
            run=run,
            fetch=self.server.fetch,
            move=move,
            set_attrs=set_attrs,
            get_bin_path=lambda name, opt_dirs: self.cargo,
            warn=self.warnings.append,
            tmpdir=str(self.tmp),
            check_mode=check_mode,
            os_family=self.os_family,
            distribution_major_version=self.distribution_major_version,
            euid=0,
            package_paths=self.package_paths,
            vhost_user_system_dirs=(str(self.share), str(self.etc)),
            lib_dirs=self.lib_dirs,
        )

    def request(self, **kw) -> I.Request:
        kw.setdefault("install_dir", str(self.install_dir))
        kw.setdefault("vhost_user_dir", str(self.etc))
        return I.Request(**kw)

    def run(self, check_mode=False, **kw):
        req = self.request(**kw)
        inst = I.Installer(req, self.host(check_mode))
        return inst.absent() if req.state == "absent" else inst.present()

    @property
    def binary(self) -> Path:
        return self.install_dir / "virtiofsd"

    def publish_zip(self, name: str, daemon: bytes, member: str = MEMBER) -> tuple:
        data = make_zip(self.root / name, {member: daemon})
        url = f"https://artifacts.example/{name}"
        self.server.add(url, data)
        return url, f"sha256:{sha(data)}"


def legacy_world(lab):
    """The Debian 12 situation: the C daemon at a package path with its /usr/share descriptor."""
    c_bin = write_exec(Path(lab.package_paths[1]), C_SCRIPT)
    lab.share.mkdir()
    (lab.share / "50-qemu-virtiofsd.json").write_text(json.dumps(
        {"description": "QEMU virtiofsd vhost-user-fs", "type": "fs", "binary": str(c_bin)}, indent=2))
    return c_bin
