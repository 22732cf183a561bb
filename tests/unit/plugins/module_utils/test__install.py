# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for _install: real archives, real files and real (scripted) daemons in tmp_path.

The "daemons" are small shell scripts that answer --version/--help/--print-capabilities like
the Rust or the C virtiofsd; downloads go through a fake ``fetch`` that serves bytes and counts
requests; cargo is a script that writes a daemon where cargo would.
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

import pytest

try:
    import tomllib
except ImportError:  # pragma: no cover - Python < 3.11
    tomllib = None

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _install as I
from ansible_collections.virtiofs.libvirt.plugins.module_utils._install import InstallError

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
        self.os_release = 'ID=debian\nVERSION_ID="12"\n'

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
            os_release=self.os_release,
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


@pytest.fixture
def lab(tmp_path):
    return Lab(tmp_path)


# ------------------------------------------------------------------------------- checksums

def test_parse_checksum_accepts_sha256_and_normalises_case():
    digest = "AB" * 32
    assert I.parse_checksum(f"sha256:{digest}") == "ab" * 32
    assert I.parse_checksum(f"  SHA256:{digest} ") == "ab" * 32


@pytest.mark.parametrize("text,fragment", [
    ("ab" * 32, "no algorithm prefix"),
    ("md5:" + "ab" * 16, "is not supported: only sha256 is"),
    ("sha512:" + "ab" * 64, "only sha256"),
    ("sha256:" + "ab" * 31, "is not a sha256 digest: expected sha256: followed by 64 hex digits"),
    ("sha256:" + "zz" * 32, "64 hex digits"),
    ("", "no algorithm prefix"),
])
def test_parse_checksum_rejects_bad_values(text, fragment):
    with pytest.raises(InstallError, match=fragment):
        I.parse_checksum(text)


def test_verify_checksum(tmp_path):
    f = tmp_path / "a.zip"
    f.write_bytes(b"hello")
    assert I.verify_checksum(str(f), f"sha256:{sha(b'hello')}") == sha(b"hello")
    with pytest.raises(InstallError) as exc:
        I.verify_checksum(str(f), "sha256:" + "0" * 64, "the artifact")
    assert "checksum mismatch for the artifact" in str(exc.value)
    assert f"got sha256:{sha(b'hello')}" in str(exc.value)
    assert I.sha256_file(str(tmp_path / "missing")) is None


# ------------------------------------------------------------------------------- archives

def test_detect_archive_kinds(tmp_path):
    make_zip(tmp_path / "a.zip", {"x": b"1"})
    make_tar(tmp_path / "a.tgz", {"x": b"1"}, "w:gz")
    make_tar(tmp_path / "a.txz", {"x": b"1"}, "w:xz")
    make_tar(tmp_path / "a.tar", {"x": b"1"}, "w")
    (tmp_path / "bin").write_bytes(ELF)
    (tmp_path / "junk").write_bytes(b"<html>not found</html>")
    assert I.detect_archive(str(tmp_path / "a.zip")) == "zip"
    assert I.detect_archive(str(tmp_path / "a.tgz")) == "tar"
    assert I.detect_archive(str(tmp_path / "a.txz")) == "tar"
    assert I.detect_archive(str(tmp_path / "a.tar")) == "tar"
    assert I.detect_archive(str(tmp_path / "bin")) == "binary"
    with pytest.raises(InstallError, match="is neither a zip, a tar"):
        I.detect_archive(str(tmp_path / "junk"))


@pytest.mark.parametrize("fmt", ["zip", "w:gz", "w:xz"])
def test_extract_member_from_upstream_layout(tmp_path, fmt):
    payload = rust_script()
    members = {"README": b"readme", MEMBER: payload, "target/x86_64-unknown-linux-musl/release/virtiofsd.d": b"deps"}
    arc = tmp_path / "artifact"
    if fmt == "zip":
        make_zip(arc, members)
    else:
        make_tar(arc, {f"./{k}": v for k, v in members.items()}, fmt)  # tar with ./ prefixes
    dest = tmp_path / "out"
    kind = I.extract_member(str(arc), MEMBER, str(dest))
    assert kind == ("zip" if fmt == "zip" else "tar")
    assert dest.read_bytes() == payload


@pytest.mark.parametrize("fmt", ["zip", "w:gz"])
def test_extract_member_missing_names_candidates(tmp_path, fmt):
    arc = tmp_path / "artifact"
    members = {"target/release/virtiofsd": b"x", "README": b"r"}
    make_zip(arc, members) if fmt == "zip" else make_tar(arc, members, fmt)
    dest = tmp_path / "out"
    with pytest.raises(InstallError) as exc:
        I.extract_member(str(arc), MEMBER, str(dest))
    msg = str(exc.value)
    assert f"member '{MEMBER}' not found" in msg
    assert "target/release/virtiofsd" in msg  # the candidate with the same base name
    assert "README" not in msg
    assert "(set member to the path of the virtiofsd binary inside the archive)" in msg
    assert not dest.exists()


def test_extract_member_rejects_symlink_and_directory(tmp_path):
    arc = tmp_path / "a.tgz"
    make_tar(arc, {"bin/virtiofsd": ("symlink", "/usr/bin/sh")})
    with pytest.raises(InstallError, match="not a regular file .a link."):
        I.extract_member(str(arc), "bin/virtiofsd", str(tmp_path / "out"))
    z = tmp_path / "d.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("dir/", b"")
    with pytest.raises(InstallError, match="not a regular file"):
        I.extract_member(str(z), "dir", str(tmp_path / "out"))


def test_extract_member_bare_binary_is_copied(tmp_path):
    src = tmp_path / "virtiofsd"
    src.write_bytes(ELF)
    dest = tmp_path / "out"
    assert I.extract_member(str(src), "ignored/member", str(dest)) == "binary"
    assert dest.read_bytes() == ELF


def test_extract_member_rejects_parent_paths(tmp_path):
    arc = tmp_path / "a.zip"
    make_zip(arc, {"x": b"1"})
    with pytest.raises(InstallError, match="not a relative path"):
        I.extract_member(str(arc), "../etc/passwd", str(tmp_path / "out"))


def test_corrupt_zip_is_a_clear_error(tmp_path):
    arc = tmp_path / "a.zip"
    arc.write_bytes(b"PK\x03\x04" + b"garbage" * 10)
    with pytest.raises(InstallError, match="cannot read archive"):
        I.extract_member(str(arc), MEMBER, str(tmp_path / "out"))


def test_safe_extract_tar(tmp_path):
    good = tmp_path / "good.tgz"
    make_tar(good, {"virtiofsd-1.13.2/Cargo.toml": b'[package]\nname = "virtiofsd"\n',
                    "virtiofsd-1.13.2/src/main.rs": b"fn main() {}\n"})
    out = tmp_path / "out"
    out.mkdir()
    I.safe_extract_tar(str(good), str(out))
    assert (out / "virtiofsd-1.13.2/src/main.rs").read_bytes() == b"fn main() {}\n"
    assert I.find_source_root(str(out)) == str(out / "virtiofsd-1.13.2")
    for name, members in {
        "dotdot.tgz": {"../evil": b"x"},
        "abs.tgz": {"/etc/evil": b"x"},
        "link.tgz": {"a/link": ("symlink", "../../etc/passwd")},
    }.items():
        bad = tmp_path / name
        make_tar(bad, members)
        with pytest.raises(InstallError, match="outside the archive"):
            I.safe_extract_tar(str(bad), str(out))
    assert not (tmp_path / "evil").exists()


def test_find_source_root_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(InstallError, match="no Cargo.toml at the top of"):
        I.find_source_root(str(tmp_path))


# ------------------------------------------------------------------------------- downloads

@pytest.mark.parametrize("url,allow,ok", [
    ("https://x/y.zip", False, True),
    ("http://127.0.0.1:8000/y.zip", False, False),
    ("http://127.0.0.1:8000/y.zip", True, True),
    ("ftp://x/y.zip", True, False),
    ("file:///tmp/y.zip", True, False),
    ("/tmp/y.zip", True, False),
])
def test_check_url(url, allow, ok):
    if ok:
        I.check_url(url, allow)
    else:
        with pytest.raises(InstallError):
            I.check_url(url, allow)


def test_check_url_http_message_names_the_fix():
    with pytest.raises(InstallError, match="allow_http=true"):
        I.check_url("http://127.0.0.1/x.zip", False)
    with pytest.raises(InstallError) as err:
        I.check_url("ftp://127.0.0.1/x.zip", True)
    assert "must start with https:// (or http:// with allow_http=true)" in str(err.value)


def test_download(tmp_path):
    srv = Server()
    srv.add("https://a/x.zip", b"data")
    srv.add("https://a/404.zip", b"", status=404)
    srv.add("https://a/redir.zip", b"data", final_url="http://a/x.zip")
    dest = tmp_path / "d"
    assert I.download(srv.fetch, "https://a/x.zip", str(dest)) == sha(b"data")
    assert dest.read_bytes() == b"data"
    with pytest.raises(InstallError, match="failed: HTTP status 404"):
        I.download(srv.fetch, "https://a/404.zip", str(dest))
    with pytest.raises(InstallError, match="Connection refused"):
        I.download(srv.fetch, "https://a/none.zip", str(dest))
    with pytest.raises(InstallError, match="was redirected to http://a/x.zip"):
        I.download(srv.fetch, "https://a/redir.zip", str(dest))
    with pytest.raises(InstallError, match="plain http"):
        I.download(srv.fetch, "http://a/x.zip", str(dest))
    assert srv.requests == ["https://a/x.zip", "https://a/404.zip", "https://a/none.zip", "https://a/redir.zip"]


# ------------------------------------------------------------------------------- manifest / decisions

IDENT = {"method": "url", "url": "https://a/x.zip", "checksum": "sha256:" + "a" * 64, "member": MEMBER}


def manifest(**kw):
    m = {"schema": 1, "sha256": "b" * 64, "version": "1.13.2", "request": dict(IDENT)}
    m.update(kw)
    return m


@pytest.mark.parametrize("man,binary_sha,ident,version,expected,why", [
    (None, "b" * 64, IDENT, None, False, "no manifest"),
    (manifest(), None, IDENT, None, False, "binary is missing"),
    (manifest(), "c" * 64, IDENT, None, False, "sha256 differs"),
    (manifest(), "b" * 64, dict(IDENT, url="https://a/y.zip"), None, False, "request changed (url)"),
    (manifest(), "b" * 64, dict(IDENT, checksum="sha256:" + "d" * 64), None, False, "request changed (checksum)"),
    (manifest(), "b" * 64, IDENT, "1.13.2", True, "same request"),
    (manifest(), "b" * 64, IDENT, ">=1.10.0", True, "same request"),
    (manifest(), "b" * 64, IDENT, None, True, "same request"),
    (manifest(), "b" * 64, IDENT, ">=1.14.0", False, "does not satisfy >=1.14.0"),
    (manifest(version="garbage"), "b" * 64, IDENT, "1.13.2", False, "does not satisfy"),
])
def test_decide_up_to_date(man, binary_sha, ident, version, expected, why):
    ok, reason = I.decide_up_to_date(man, binary_sha, ident, version)
    assert ok is expected
    assert why in reason


def test_read_manifest(tmp_path):
    assert I.read_manifest(str(tmp_path)) is None
    p = tmp_path / I.MANIFEST_NAME
    p.write_text("{not json")
    assert I.read_manifest(str(tmp_path)) is None
    p.write_text(json.dumps({"schema": 99}))
    assert I.read_manifest(str(tmp_path)) is None
    p.write_text(json.dumps(manifest()))
    assert I.read_manifest(str(tmp_path))["version"] == "1.13.2"


# ------------------------------------------------------------------------------- cargo helpers

def test_render_cargo_config_is_valid_toml_with_source_replacement():
    text = I.render_cargo_config('/srv/reg "quoted"\\dir')
    if tomllib is None:  # pragma: no cover
        pytest.skip("tomllib needs Python 3.11")
    data = tomllib.loads(text)
    name = data["source"]["crates-io"]["replace-with"]
    assert data["source"][name]["directory"] == '/srv/reg "quoted"\\dir'
    assert data["net"]["offline"] is True


def test_read_cargo_package_reads_only_the_package_table():
    text = (
        '[package]\nname = "virtiofsd"\ndescription = "x"\nversion = "1.13.2"\n\n'
        '[dependencies.clap]\nversion = "4"\n'
    )
    assert I.read_cargo_package(text) == ("virtiofsd", "1.13.2")
    assert I.read_cargo_package('[dependencies]\nversion = "1"\n') == (None, None)


def test_registry_crates_and_newest(tmp_path):
    for v in ("1.9.0", "1.13.2", "1.10.1"):
        (tmp_path / f"virtiofsd-{v}").mkdir()
        (tmp_path / f"virtiofsd-{v}" / "Cargo.toml").write_text("")
    (tmp_path / "virtiofsd-notes").mkdir()
    (tmp_path / "vhost-0.10.0").mkdir()
    crates = I.registry_crates(str(tmp_path))
    assert sorted(crates) == ["1.10.1", "1.13.2", "1.9.0"]
    assert I.newest(crates) == "1.13.2"
    assert I.newest([]) is None


def test_missing_build_deps(tmp_path):
    libs = tmp_path / "lib"
    libs.mkdir()
    assert I.missing_build_deps(None, [str(libs)]) == ["cargo", "libseccomp", "libcap-ng"]
    (libs / "libseccomp.so").write_bytes(b"")
    (libs / "libcap-ng.a").write_bytes(b"")
    assert I.missing_build_deps("/usr/bin/cargo", [str(libs)]) == []
    assert I.missing_build_deps(None, [str(tmp_path / "l*")]) == ["cargo"]


@pytest.mark.parametrize("family,present,absent", [
    ("debian", ["libseccomp-dev libcap-ng-dev cargo"], ["devel"]),
    ("redhat", ["libseccomp-devel libcap-ng-devel cargo"], ["-dev "]),
    (None, ["libseccomp-dev libcap-ng-dev cargo", "libseccomp-devel libcap-ng-devel cargo"], []),
])
def test_build_deps_message(family, present, absent):
    msg = I.build_deps_message(["libseccomp"], family)
    assert "missing libseccomp" in msg
    for p in present:
        assert p in msg
    for a in absent:
        assert a not in msg


@pytest.mark.parametrize("text,family,major", [
    ('ID=debian\nVERSION_ID="12"\n', "debian", 12),
    ('ID=debian\nVERSION_ID="13"\n', "debian", 13),
    ('ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n', "debian", None),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n', "redhat", None),
    ('ID=fedora\nVERSION_ID=40\n', "redhat", None),
    ('ID=arch\n', None, None),
    ("", None, None),
])
def test_os_release(text, family, major):
    assert I.os_family(text) == family
    assert I.debian_major(text) == major


def test_output_tail():
    out = "\n".join(f"line {i}" for i in range(100))
    tail = I.output_tail(out, "error: linking failed", lines=5)
    assert tail.splitlines() == ["line 96", "line 97", "line 98", "line 99", "error: linking failed"]


# ------------------------------------------------------------------------------- vhost-user

def test_descriptor_rendering_and_tags():
    text = I.render_descriptor("/opt/v/virtiofsd", ["migrate-precopy"], ["50-qemu-virtiofsd.json"])
    data = json.loads(text)
    assert data["type"] == "fs"
    assert data["binary"] == "/opt/v/virtiofsd"
    assert data["features"] == ["migrate-precopy"]
    assert I.descriptor_name(40) == "40-virtiofsd-rust.json"
    assert I.descriptor_name(5) == "05-virtiofsd-rust.json"


# ------------------------------------------------------------------------------- request validation

@pytest.mark.parametrize("kw,fragment", [
    (dict(method="url"), "method=url needs url"),
    (dict(method="url", url="https://a/x.zip"), "method=url needs checksum"),
    (dict(method="url", url="http://a/x.zip", checksum="sha256:" + "a" * 64), "allow_http"),
    (dict(method="url", url="https://a/x.zip", checksum="md5:abc"), "only sha256"),
    (dict(method="package", version="latest"), "not a version requirement"),
    (dict(method="package", mask_legacy=True), "needs register_vhost_user"),
    (dict(method="package", install_dir="relative"), "must be an absolute path"),
    (dict(method="package", binary_name="a/b"), "must be a plain file name"),
    (dict(method="package", vhost_user_priority=100), "between 0 and 99"),
    (dict(method="source", source_dir="/nonexistent/src"), "is not a directory"),
    (dict(method="source", source_archive="/nonexistent.tgz"), "is not a file"),
    (dict(method=None), "method must be one of"),
    (dict(method="source", checksum="sha256:" + "a" * 64), "checksum applies to the file at url or to source_archive"),
    (dict(method="source", source_dir="/", source_archive="/x.tgz"), "source_dir and source_archive are mutually exclusive"),
    (dict(method="source", source_dir="/", cargo_path="/nonexistent/cargo"), "is not an executable file"),
    (dict(method="source", source_dir="/", crate_version="newest"), "crate_version: not a version number"),
])
def test_request_validation(kw, fragment):
    with pytest.raises(InstallError, match=fragment):
        I.Request(**kw).validate()


def test_request_without_checksum_allowed_when_not_required():
    I.Request(method="url", url="https://a/x.zip", checksum_required=False).validate()
    assert I.Request(version="1.13.2").exact_version() == "1.13.2"
    assert I.Request(version=">=1.10").exact_version() is None
    assert I.Request(version="1.13").exact_version() is None  # any 1.13.x
    assert I.Request(crate_version="1.13.2", version=">=1").exact_version() == "1.13.2"


# ------------------------------------------------------------------------------- url installs

def test_url_install_then_idempotent_without_network(lab):
    url, checksum = lab.publish_zip("virtiofsd-v1.13.2.zip", rust_script("1.13.2"))
    res = lab.run(method="url", url=url, checksum=checksum, version="1.13.2")
    assert res["changed"] is True
    assert res["path"] == str(lab.binary)
    assert res["version"] == "1.13.2"
    assert res["implementation"] == "rust"
    assert res["capabilities"] == {"type": "fs", "features": ["migrate-precopy", "separate-options"]}
    assert "--shared-dir" in res["supported_options"]
    assert lab.binary.read_bytes() == rust_script("1.13.2")
    assert stat.S_IMODE(lab.binary.stat().st_mode) == 0o755
    assert stat.S_IMODE(lab.install_dir.stat().st_mode) == 0o755
    man = json.loads((lab.install_dir / I.MANIFEST_NAME).read_text())
    assert man["version"] == "1.13.2"
    assert man["sha256"] == sha(rust_script("1.13.2"))
    assert man["artifact_sha256"] == checksum.split(":")[1]
    assert man["request"] == {"method": "url", "url": url, "checksum": checksum, "member": MEMBER}
    assert man["created_install_dir"] is True
    assert lab.moves and lab.moves[0][1] == str(lab.binary)
    assert os.path.dirname(lab.moves[0][0]) == str(lab.install_dir)  # staged in install_dir
    assert sorted(os.listdir(lab.install_dir)) == [I.MANIFEST_NAME, "virtiofsd"]  # no temp files left
    assert lab.server.requests == [url]
    assert os.listdir(lab.tmp) == []  # download removed

    res2 = lab.run(method="url", url=url, checksum=checksum, version="1.13.2")
    assert res2["changed"] is False
    assert res2["version"] == "1.13.2"
    assert lab.server.requests == [url]  # no second download
    assert res2["diff"]["before"] == res2["diff"]["after"]

    # a looser requirement is still satisfied by the same request: no download either
    res3 = lab.run(method="url", url=url, checksum=checksum, version=">=1.10.0")
    assert res3["changed"] is False
    assert lab.server.requests == [url]


def test_url_check_mode_downloads_nothing(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    res = lab.run(check_mode=True, method="url", url=url, checksum=checksum, version="1.13.2")
    assert res["changed"] is True
    assert res["version"] == "1.13.2"
    assert res["diff"]["after"]["installed"] is True
    assert res["diff"]["before"]["installed"] is False
    assert "install virtiofsd into" in res["actions"][0]
    assert lab.server.requests == []
    assert not lab.install_dir.exists()


def test_checksum_mismatch_keeps_previous_binary(lab):
    url, checksum = lab.publish_zip("v1.zip", rust_script("1.13.2"))
    lab.run(method="url", url=url, checksum=checksum)
    before = lab.binary.read_bytes()
    manifest_before = (lab.install_dir / I.MANIFEST_NAME).read_bytes()
    url2 = lab.publish_zip("v2.zip", rust_script("1.13.3"))[0]
    with pytest.raises(InstallError) as exc:
        lab.run(method="url", url=url2, checksum="sha256:" + "0" * 64)
    assert "checksum mismatch" in str(exc.value)
    assert lab.binary.read_bytes() == before
    assert (lab.install_dir / I.MANIFEST_NAME).read_bytes() == manifest_before
    assert sorted(os.listdir(lab.install_dir)) == [I.MANIFEST_NAME, "virtiofsd"]
    assert real_run([str(lab.binary), "--version"])[1].strip() == "virtiofsd 1.13.2"


@pytest.mark.parametrize("daemon,kw,fragment", [
    (C_SCRIPT, {}, "is not the Rust virtiofsd"),
    (rust_script("1.12.0"), {"version": "1.13.2"}, "virtiofsd 1.12.0, which does not satisfy version '1.13.2'"),
    (rust_script("1.12.0"), {"version": ">=1.13.0"}, "does not satisfy"),
    (b"#!/bin/sh\necho hello\n", {}, "does not look like virtiofsd"),
])
def test_bad_binaries_are_rejected_and_nothing_changes(lab, daemon, kw, fragment):
    url, checksum = lab.publish_zip("good.zip", rust_script("1.13.2"))
    lab.run(method="url", url=url, checksum=checksum)
    before = lab.binary.read_bytes()
    url2, checksum2 = lab.publish_zip("bad.zip", daemon)
    with pytest.raises(InstallError, match=fragment) as err:
        lab.run(method="url", url=url2, checksum=checksum2, **kw)
    if daemon != b"#!/bin/sh\necho hello\n":  # a virtiofsd that is not the one wanted: the fix is named
        assert "nothing was installed (install the Rust virtiofsd: fix the url/source or the version)" in str(err.value)
    assert lab.binary.read_bytes() == before
    assert json.loads((lab.install_dir / I.MANIFEST_NAME).read_text())["request"]["url"] == url
    assert sorted(os.listdir(lab.install_dir)) == [I.MANIFEST_NAME, "virtiofsd"]


def test_failed_first_install_leaves_no_install_dir(lab):
    url, checksum = lab.publish_zip("c.zip", C_SCRIPT)
    with pytest.raises(InstallError, match="legacy C virtiofsd"):
        lab.run(method="url", url=url, checksum=checksum)
    assert not lab.install_dir.exists()
    with pytest.raises(InstallError, match="HTTP status|Connection refused"):
        lab.run(method="url", url="https://artifacts.example/missing.zip", checksum=checksum)
    assert not lab.install_dir.exists()


def test_member_missing_is_reported(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script(), member="virtiofsd")
    with pytest.raises(InstallError, match="not found in the zip archive; it contains: virtiofsd"):
        lab.run(method="url", url=url, checksum=checksum)
    res = lab.run(method="url", url=url, checksum=checksum, member="virtiofsd")
    assert res["changed"] is True


def test_changed_binary_is_reinstalled(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum)
    lab.binary.write_bytes(rust_script("9.9.9"))
    res = lab.run(method="url", url=url, checksum=checksum)
    assert res["changed"] is True
    assert "sha256 differs" in res["actions"][0]
    assert lab.binary.read_bytes() == rust_script()
    assert len(lab.server.requests) == 2


def test_install_dir_writable_by_others_is_refused(lab):
    lab.install_dir.mkdir(parents=True)
    lab.install_dir.chmod(0o777)
    url, checksum = lab.publish_zip("v.zip", rust_script())
    with pytest.raises(InstallError, match="writable by group and others .*libvirt runs it as root, so it is refused. Fix: chmod go-w"):
        lab.run(method="url", url=url, checksum=checksum)
    assert lab.server.requests == []


def test_unverified_download_warns(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    res = lab.run(method="url", url=url, checksum_required=False)
    assert res["changed"] is True
    assert lab.warnings and checksum.split(":")[1] in lab.warnings[0]


def test_not_root_cannot_install(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    host = lab.host()
    host.euid = 1000
    with pytest.raises(InstallError, match="installing virtiofsd needs root"):
        I.Installer(lab.request(method="url", url=url, checksum=checksum), host).present()


# ------------------------------------------------------------------------------- absent

def test_absent_removes_only_what_was_installed(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum)
    (lab.install_dir / "virtiofsd.sh").write_text("#!/bin/sh\n")  # someone else's file

    res = lab.run(check_mode=True, state="absent")
    assert res["changed"] is True
    assert lab.binary.exists()

    res = lab.run(state="absent")
    assert res["changed"] is True
    assert not lab.binary.exists()
    assert not (lab.install_dir / I.MANIFEST_NAME).exists()
    assert (lab.install_dir / "virtiofsd.sh").exists()  # kept, and so is the directory

    res = lab.run(state="absent")
    assert res["changed"] is False

    (lab.install_dir / "virtiofsd.sh").unlink()
    lab.run(method="url", url=url, checksum=checksum)
    lab.run(state="absent")
    assert lab.install_dir.exists()  # it existed before the second install: not ours to remove


def test_absent_removes_created_dir(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum)
    lab.run(state="absent")
    assert not lab.install_dir.exists()


def test_absent_leaves_foreign_binary(lab):
    write_exec(lab.binary, rust_script())
    res = lab.run(state="absent")
    assert res["changed"] is False
    assert lab.binary.exists()
    assert "not installed by this module" in lab.warnings[0]


# ------------------------------------------------------------------------------- vhost-user registration

def legacy_world(lab):
    c_bin = write_exec(Path(lab.package_paths[1]), C_SCRIPT)
    lab.share.mkdir()
    (lab.share / "50-qemu-virtiofsd.json").write_text(json.dumps(
        {"description": "QEMU virtiofsd vhost-user-fs", "type": "fs", "binary": str(c_bin)}, indent=2))
    return c_bin


def test_legacy_daemon_reported(lab):
    c_bin = legacy_world(lab)
    url, checksum = lab.publish_zip("v.zip", rust_script())
    res = lab.run(method="url", url=url, checksum=checksum)
    assert res["legacy_daemons"] == [{
        "path": str(c_bin),
        "realpath": str(c_bin),
        "version": "7.2.22",
        "version_raw": "virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)",
        "descriptors": [str(lab.share / "50-qemu-virtiofsd.json")],
    }]
    (desc,) = res["vhost_user_descriptors"]
    assert desc["implementation"] == "c"
    assert desc["selected"] is True
    assert desc["binary"] == str(c_bin)


def test_register_and_mask_then_unregister(lab):
    legacy_world(lab)
    url, checksum = lab.publish_zip("v.zip", rust_script())
    kw = dict(method="url", url=url, checksum=checksum, register_vhost_user=True, mask_legacy=True)

    res = lab.run(check_mode=True, **kw)
    assert res["changed"] is True
    assert not lab.etc.exists()

    res = lab.run(**kw)
    target = lab.etc / "40-virtiofsd-rust.json"
    assert res["vhost_user_descriptor"] == str(target)
    data = json.loads(target.read_text())
    assert data["binary"] == str(lab.binary)
    assert data["type"] == "fs"
    assert data["features"] == ["migrate-precopy", "separate-options"]
    mask = lab.etc / "50-qemu-virtiofsd.json"
    assert mask.exists() and mask.stat().st_size == 0
    assert res["masked"] == ["50-qemu-virtiofsd.json"]
    by_file = {d["file"]: d for d in res["vhost_user_descriptors"]}
    assert by_file[str(target)]["selected"] is True
    assert by_file[str(target)]["implementation"] == "rust"
    assert by_file[str(lab.share / "50-qemu-virtiofsd.json")]["masked_by"] == str(mask)

    res = lab.run(**kw)
    assert res["changed"] is False, res["actions"]
    assert len(lab.server.requests) == 1

    # new priority: the old descriptor moves, the mask stays
    res = lab.run(vhost_user_priority=10, **kw)
    assert res["changed"] is True
    assert not target.exists()
    assert (lab.etc / "10-virtiofsd-rust.json").exists()
    assert mask.exists()

    # masking switched off: our mask goes
    res = lab.run(**dict(kw, mask_legacy=False, vhost_user_priority=10))
    assert not mask.exists()
    assert "masks=" not in (lab.etc / "10-virtiofsd-rust.json").read_text()

    res = lab.run(**dict(kw, vhost_user_priority=10))
    assert mask.exists()
    res = lab.run(state="absent")
    assert res["changed"] is True
    assert sorted(os.listdir(lab.etc)) == []
    assert (lab.share / "50-qemu-virtiofsd.json").exists()


def test_admin_mask_is_not_claimed_or_removed(lab):
    legacy_world(lab)
    lab.etc.mkdir()
    admin_mask = lab.etc / "50-qemu-virtiofsd.json"
    admin_mask.write_text("")
    url, checksum = lab.publish_zip("v.zip", rust_script())
    res = lab.run(method="url", url=url, checksum=checksum, register_vhost_user=True, mask_legacy=True)
    assert res["masked"] == []
    lab.run(state="absent")
    assert admin_mask.exists()


def test_register_false_removes_our_descriptor(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum, register_vhost_user=True)
    assert (lab.etc / "40-virtiofsd-rust.json").exists()
    res = lab.run(method="url", url=url, checksum=checksum)
    assert res["changed"] is True
    assert not (lab.etc / "40-virtiofsd-rust.json").exists()


# ------------------------------------------------------------------------------- package method

def test_package_on_debian12_with_only_the_c_daemon(lab):
    legacy_world(lab)
    with pytest.raises(InstallError) as exc:
        lab.run(method="package")
    msg = str(exc.value)
    assert msg.startswith("no Rust virtiofsd package found")
    assert "(Debian 12 has none: use method url or source)" in msg
    assert "legacy C daemon" in msg


def test_package_elsewhere_suggests_installing_it(lab):
    lab.os_release = 'ID=fedora\nVERSION_ID=40\n'
    with pytest.raises(InstallError, match="ansible.builtin.package name=virtiofsd"):
        lab.run(method="package")


def test_package_finds_rust_binary_and_checks_version(lab):
    lab.os_release = 'ID=debian\nVERSION_ID="13"\n'
    rust = write_exec(Path(lab.package_paths[0]), rust_script("1.13.2"))
    res = lab.run(method="package", version=">=1.11.1")
    assert res["changed"] is False
    assert res["path"] == str(rust)
    assert res["implementation"] == "rust"
    assert res["version"] == "1.13.2"
    assert res["method"] == "package"
    with pytest.raises(InstallError, match="satisfying >=1.14.0.*does not satisfy >=1.14.0"):
        lab.run(method="package", version=">=1.14.0")
    res = lab.run(method="package", register_vhost_user=True)
    assert res["changed"] is True
    assert json.loads((lab.etc / "40-virtiofsd-rust.json").read_text())["binary"] == str(rust)
    res = lab.run(state="absent", method="package")
    assert res["changed"] is True
    assert not (lab.etc / "40-virtiofsd-rust.json").exists()
    assert rust.exists()


@pytest.mark.parametrize("weak", ["binary", "directory"])
def test_package_binary_others_can_change_is_refused(lab, weak):
    lab.os_release = 'ID=debian\nVERSION_ID="13"\n'
    rust = write_exec(Path(lab.package_paths[0]), rust_script("1.13.2"))
    target = rust if weak == "binary" else rust.parent
    target.chmod(0o775 if weak == "binary" else 0o777)
    with pytest.raises(InstallError) as exc:
        lab.run(method="package", register_vhost_user=True)
    assert str(exc.value) == (
        f"the package's virtiofsd {rust} can be changed by users other than root"
        + ("" if weak == "binary" else f" because of {target}")
        + f": {target} is writable by {'group' if weak == 'binary' else 'group and others'} (uid 0, mode "
        f"{'0775' if weak == 'binary' else '0777'}); libvirt runs it as root, so it is refused. "
        f"Fix: chmod go-w {target}. Nothing was changed."
    )
    assert not lab.etc.exists() or list(lab.etc.iterdir()) == []  # no descriptor registered
    target.chmod(0o755)
    assert lab.run(method="package")["path"] == str(rust)


# ------------------------------------------------------------------------------- source method

def fake_crate(root: Path, version: str = "1.13.2") -> Path:
    root.mkdir(parents=True)
    (root / "Cargo.toml").write_text(f'[package]\nname = "virtiofsd"\nversion = "{version}"\n')
    (root / "Cargo.lock").write_text("# lock\n")
    (root / "src").mkdir()
    (root / "src/main.rs").write_text("fn main() {}\n")
    return root


def fake_cargo(lab, daemon: bytes = None, rc: int = 0) -> Path:
    """A cargo that records its environment and writes ``daemon`` where cargo build would."""
    daemon = daemon if daemon is not None else rust_script()
    (lab.root / "daemon.bin").write_bytes(daemon)
    script = (
        "#!/bin/sh\n"
        f'LOG={lab.root}/cargo.log\n'
        'echo "argv: $*" >> "$LOG"\n'
        'echo "cwd: $(pwd)" >> "$LOG"\n'
        'echo "lock: $(test -e Cargo.lock && echo yes || echo no)" >> "$LOG"\n'
        'if [ -f .cargo/config.toml ]; then sed "s/^/config: /" .cargo/config.toml >> "$LOG"; fi\n'
        f'if [ {rc} -ne 0 ]; then i=0; while [ $i -lt 60 ]; do echo "   Compiling crate$i"; i=$((i+1)); done; '
        f'echo "error: linking with cc failed" >&2; exit {rc}; fi\n'
        'mkdir -p "$CARGO_TARGET_DIR/release"\n'
        f'cp {lab.root}/daemon.bin "$CARGO_TARGET_DIR/release/virtiofsd"\n'
    )
    return write_exec(lab.root / "bin" / "cargo", script.encode())


def test_source_offline_build_from_registry(lab):
    registry = lab.root / "registry"
    src = fake_crate(registry / "virtiofsd-1.13.2")
    fake_crate(registry / "virtiofsd-1.12.0", "1.12.0")
    lab.cargo = str(fake_cargo(lab))
    res = lab.run(method="source", crate_version="1.13.2", cargo_registry_dir=str(registry))
    assert res["changed"] is True
    assert res["version"] == "1.13.2"
    assert lab.binary.read_bytes() == rust_script()
    log = (lab.root / "cargo.log").read_text()
    assert "argv: build --release --offline" in log
    assert "lock: no" in log
    assert f'config: directory = "{registry}"' in log
    assert "config: offline = true" in log
    assert (src / "Cargo.lock").exists()  # the source itself is untouched
    assert os.listdir(lab.tmp) == []  # build dir removed
    man = json.loads((lab.install_dir / I.MANIFEST_NAME).read_text())
    assert man["request"]["crate_version"] == "1.13.2"
    assert man["method"] == "source"

    (lab.root / "cargo.log").unlink()
    res = lab.run(method="source", crate_version="1.13.2", cargo_registry_dir=str(registry))
    assert res["changed"] is False
    assert not (lab.root / "cargo.log").exists()  # cargo not run again


def test_source_archive_build(lab):
    src = fake_crate(lab.root / "stage" / "virtiofsd-1.13.2")
    arc = lab.root / "virtiofsd-1.13.2.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        tf.add(src, arcname="virtiofsd-1.13.2")
    lab.cargo = str(fake_cargo(lab))
    checksum = f"sha256:{sha(arc.read_bytes())}"
    res = lab.run(method="source", source_archive=str(arc), checksum=checksum, crate_version="1.13.2")
    assert res["changed"] is True
    log = (lab.root / "cargo.log").read_text()
    assert "argv: build --release\n" in log  # online: no registry, no --offline
    assert "lock: yes" in log
    with pytest.raises(InstallError, match="checksum mismatch for source_archive"):
        lab.run(method="source", source_archive=str(arc), checksum="sha256:" + "1" * 64)


def test_source_build_failure_shows_cargo_tail_and_keeps_binary(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum)
    before = lab.binary.read_bytes()
    src = fake_crate(lab.root / "src" / "virtiofsd")
    lab.cargo = str(fake_cargo(lab, rc=101))
    with pytest.raises(InstallError) as exc:
        lab.run(method="source", source_dir=str(src))
    msg = str(exc.value)
    assert "cargo build of virtiofsd failed (rc 101)" in msg
    assert "error: linking with cc failed" in msg
    assert "Compiling crate59" in msg
    assert "Compiling crate5\n" not in msg  # only the tail
    assert lab.binary.read_bytes() == before
    assert os.listdir(lab.tmp) == []


def test_source_wrong_crate_version_fails_before_building(lab):
    src = fake_crate(lab.root / "src" / "virtiofsd", "1.12.0")
    lab.cargo = str(fake_cargo(lab))
    with pytest.raises(InstallError, match="holds virtiofsd 1.12.0, not crate_version 1.13.2"):
        lab.run(method="source", source_dir=str(src), crate_version="1.13.2")
    assert not (lab.root / "cargo.log").exists()


def test_source_registry_without_the_crate(lab):
    registry = lab.root / "registry"
    fake_crate(registry / "virtiofsd-1.12.0", "1.12.0")
    lab.cargo = str(fake_cargo(lab))
    with pytest.raises(InstallError, match=r"not found in cargo_registry_dir .*versions there: 1.12.0"):
        lab.run(method="source", crate_version="1.13.2", cargo_registry_dir=str(registry))


def test_source_missing_build_deps_names_packages(lab):
    src = fake_crate(lab.root / "src" / "virtiofsd")
    lab.cargo = None
    lab.lib_dirs = [str(lab.root / "nolibs")]
    with pytest.raises(InstallError) as exc:
        lab.run(method="source", source_dir=str(src))
    msg = str(exc.value)
    assert "missing cargo, libseccomp, libcap-ng" in msg
    assert "libseccomp-dev libcap-ng-dev cargo" in msg  # Debian 12 in this lab
    assert not lab.install_dir.exists()
    lab.os_release = 'ID="rhel"\nID_LIKE="fedora"\n'
    with pytest.raises(InstallError, match="libseccomp-devel libcap-ng-devel cargo"):
        lab.run(method="source", source_dir=str(src))


def test_source_built_binary_must_match_crate_version(lab):
    src = fake_crate(lab.root / "src" / "virtiofsd", "1.13.2")
    lab.cargo = str(fake_cargo(lab, daemon=rust_script("1.13.1")))
    with pytest.raises(InstallError, match="reports version 1.13.1, not crate_version 1.13.2"):
        lab.run(method="source", source_dir=str(src), crate_version="1.13.2")
    assert not lab.install_dir.exists()


def test_source_check_mode_builds_nothing(lab):
    src = fake_crate(lab.root / "src" / "virtiofsd")
    lab.cargo = str(fake_cargo(lab))
    res = lab.run(check_mode=True, method="source", source_dir=str(src), crate_version="1.13.2")
    assert res["changed"] is True
    assert res["version"] == "1.13.2"
    assert not (lab.root / "cargo.log").exists()
    assert not lab.install_dir.exists()


def test_binary_mode_is_repaired_without_download(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum)
    lab.binary.chmod(0o700)
    res = lab.run(method="url", url=url, checksum=checksum)
    assert res["changed"] is True
    assert res["actions"] == [f"set owner root and mode 0755 on {lab.binary}"]
    assert stat.S_IMODE(lab.binary.stat().st_mode) == 0o755
    assert lab.server.requests == [url]


def test_existing_install_dir_keeps_its_mode(lab):
    lab.install_dir.mkdir(parents=True)
    lab.install_dir.chmod(0o750)
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum)
    assert stat.S_IMODE(lab.install_dir.stat().st_mode) == 0o750
    man = json.loads((lab.install_dir / I.MANIFEST_NAME).read_text())
    assert man["created_install_dir"] is False
    lab.run(state="absent")
    assert lab.install_dir.exists()
