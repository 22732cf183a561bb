# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Installing the Rust virtiofsd: archives, checksums, manifest, cargo builds, vhost-user files.

Private module_utils: other collections must not import it.

Plain Python. Everything that needs Ansible (running commands, downloading, moving files into
place, setting owner/mode) is passed in as a callable through :class:`Host`, so the logic is
unit-testable and the module stays thin.

Layout of an installation made by this code::

    <install_dir>/<binary_name>               the daemon, root:root 0755
    <install_dir>/.virtiofsd.manifest.json    what was installed and from which request
    <vhost_user_dir>/<NN>-virtiofsd-rust.json optional vhost-user descriptor (tagged as ours)
    <vhost_user_dir>/<name>.json              optional empty masks of legacy C descriptors

The manifest makes repeated runs free of network access: when the binary's sha256 still
matches the manifest and the manifest was written for the same request, nothing is
downloaded or built.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import typing as t
import zipfile
from dataclasses import dataclass, field

from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import problem as path_problem
from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import (
    VersionError,
    format_version,
    parse_requirement,
    parse_version,
    requirement_is_exact,
    satisfies,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._vhost_user import (
    CONF_DIR,
    MANAGED_TAG,
    MANAGER,
    MASKS_TAG_PREFIX,
    SYSTEM_DIRS,
    Descriptor,
    lookup,
    read_descriptor,
    scan_vhost_user,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd import (
    DaemonInfo,
    VirtiofsdError,
    probe_daemon,
    probe_version,
    rust_daemon_problem,
)

DEFAULT_INSTALL_DIR = "/opt/virtiofsd-rust"
DEFAULT_BINARY_NAME = "virtiofsd"
# Inner path of upstream's CI artifact and release zips (docs/reference.md B.1).
DEFAULT_MEMBER = "target/x86_64-unknown-linux-musl/release/virtiofsd"
MANIFEST_NAME = ".virtiofsd.manifest.json"
MANIFEST_SCHEMA = 1
INSTALLED_BY = MANAGER

# Where distributions put the daemon (docs/reference.md B.3, B.4). Order matters: the first Rust
# binary found is the package binary.
PACKAGE_BINARY_PATHS = (
    "/usr/libexec/virtiofsd",
    "/usr/lib/virtiofsd",
    "/usr/lib64/virtiofsd",
    "/usr/lib/qemu/virtiofsd",
    "/usr/libexec/qemu/virtiofsd",
    "/usr/bin/virtiofsd",
)

# The descriptor this module writes: <vhost_user_dir>/<NN>-virtiofsd-rust.json. The lookup
# rules (directories, precedence, masks, order) are in _vhost_user.
DEFAULT_VHOST_USER_PRIORITY = 40
DESCRIPTOR_SUFFIX = "-virtiofsd-rust.json"

BUILD_PACKAGES = {
    "debian": ("libseccomp-dev", "libcap-ng-dev", "cargo"),
    "redhat": ("libseccomp-devel", "libcap-ng-devel", "cargo"),
}
# Libraries virtiofsd links against; the unversioned .so comes with the -dev/-devel package.
BUILD_LIBRARIES = {"libseccomp": "libseccomp.so", "libcap-ng": "libcap-ng.so"}
LIBRARY_DIRS = (
    "/usr/lib",
    "/usr/lib64",
    "/lib",
    "/lib64",
    "/usr/local/lib",
    "/usr/local/lib64",
    "/usr/lib/*-linux-gnu*",
    "/lib/*-linux-gnu*",
)
CARGO_OPT_DIRS = ("~/.cargo/bin", "/root/.cargo/bin", "/usr/local/cargo/bin")
CARGO_SOURCE_NAME = "virtiofs-libvirt-offline"
CARGO_OUTPUT_TAIL = 40

#: The ways to install (the module's ``method`` choices).
METHODS = ("package", "url", "source")

ARCHIVE_ZIP = "zip"
ARCHIVE_TAR = "tar"
ARCHIVE_BINARY = "binary"

_CHUNK = 1 << 16
_MAX_MEMBER_SIZE = 1 << 30
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")

RunCallable = t.Callable[..., t.Tuple[int, str, str]]


class InstallError(Exception):
    """A failure that leaves the system unchanged; the message names the problem and the fix."""


# ---------------------------------------------------------------------------- checksums

def parse_checksum(text: str) -> str:
    """Parse ``sha256:<64 hex digits>`` into the lower-case hex digest."""
    value = (text or "").strip()
    algo, sep, digest = value.partition(":")
    if not sep:
        raise InstallError(
            f"checksum {text!r} has no algorithm prefix: write it as sha256:<64 hex digits>"
        )
    if algo.strip().lower() != "sha256":
        raise InstallError(
            f"checksum algorithm {algo!r} is not supported: only sha256 is (sha256:<64 hex digits>)"
        )
    digest = digest.strip()
    if not _SHA256_RE.match(digest):
        raise InstallError(
            f"checksum {text!r} is not a sha256 digest: expected sha256: followed by 64 hex digits"
        )
    return digest.lower()


def sha256_file(path: str) -> t.Optional[str]:
    """Hex sha256 of a file, or ``None`` when it does not exist."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
    except FileNotFoundError:
        return None
    return h.hexdigest()


def verify_checksum(path: str, checksum: str, what: t.Optional[str] = None) -> str:
    """Compare a file with ``sha256:<hex>``; return the digest or raise :class:`InstallError`."""
    wanted = parse_checksum(checksum)
    actual = sha256_file(path)
    if actual != wanted:
        raise InstallError(
            f"checksum mismatch for {what or path}: expected sha256:{wanted}, got sha256:{actual}; "
            "nothing was installed (check the url or update checksum)"
        )
    return actual


# ---------------------------------------------------------------------------- archives

def detect_archive(path: str) -> str:
    """``zip``, ``tar`` (plain, gzip, xz, bzip2) or ``binary`` (an ELF file), by content."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"\x7fELF"):
        return ARCHIVE_BINARY
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return ARCHIVE_ZIP
    if head.startswith((b"\x1f\x8b", b"\xfd7zXZ\x00", b"BZh")) or head[257:262] == b"ustar":
        return ARCHIVE_TAR
    raise InstallError(
        f"{path} is neither a zip, a tar(.gz/.xz/.bz2) archive nor an ELF binary "
        f"(first bytes {head[:8]!r}); check the url"
    )


def normalize_member(name: str) -> str:
    """``./a//b/`` -> ``a/b``; archive member names compare after this."""
    name = (name or "").replace("\\", "/").strip()
    while name.startswith("./"):
        name = name[2:]
    name = name.lstrip("/")
    return posixpath.normpath(name) if name else ""


def _member_hint(names: t.List[str], member: str) -> str:
    base = posixpath.basename(member)
    cands = [n for n in names if posixpath.basename(n) == base] or names
    shown = ", ".join(sorted(cands)[:15]) or "(no files)"
    more = f" and {len(cands) - 15} more" if len(cands) > 15 else ""
    return f"it contains: {shown}{more}"


def _copy_stream(src: t.BinaryIO, dest_path: str, limit: int = _MAX_MEMBER_SIZE) -> None:
    total = 0
    with open(dest_path, "wb") as out:
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            total += len(chunk)
            if total > limit:
                raise InstallError(f"archive member is larger than {limit} bytes; refusing to extract it")
            out.write(chunk)


def extract_member(archive_path: str, member: str, dest_path: str) -> str:
    """Write ``member`` of a zip/tar archive (or a bare ELF binary) to ``dest_path``.

    Returns the archive kind. Raises :class:`InstallError` naming the members that exist
    when ``member`` is missing, and for links or other non-regular members.
    """
    kind = detect_archive(archive_path)
    if kind == ARCHIVE_BINARY:
        with open(archive_path, "rb") as src:
            _copy_stream(src, dest_path)
        return kind
    want = normalize_member(member)
    if not want or want.startswith("../"):
        raise InstallError(f"member {member!r} is not a relative path inside the archive")
    try:
        if kind == ARCHIVE_ZIP:
            with zipfile.ZipFile(archive_path) as zf:
                infos = [i for i in zf.infolist() if normalize_member(i.filename) == want]
                if not infos:
                    names = [normalize_member(i.filename) for i in zf.infolist() if not i.is_dir()]
                    raise InstallError(
                        f"member {member!r} not found in the zip archive; {_member_hint(names, want)} "
                        "(set member to the path of the virtiofsd binary inside the archive)"
                    )
                info = infos[-1]
                mode = (info.external_attr >> 16) & 0o170000
                if info.is_dir() or (mode and mode != stat.S_IFREG):
                    raise InstallError(f"member {member!r} of the zip archive is not a regular file")
                with zf.open(info) as src:
                    _copy_stream(src, dest_path)
        else:
            with tarfile.open(archive_path, "r:*") as tf:
                found = [m for m in tf.getmembers() if normalize_member(m.name) == want]
                if not found:
                    names = [normalize_member(m.name) for m in tf.getmembers() if m.isfile()]
                    raise InstallError(
                        f"member {member!r} not found in the tar archive; {_member_hint(names, want)} "
                        "(set member to the path of the virtiofsd binary inside the archive)"
                    )
                info = found[-1]
                if not info.isfile():
                    raise InstallError(
                        f"member {member!r} of the tar archive is not a regular file "
                        f"({'a link' if info.issym() or info.islnk() else 'type ' + repr(info.type)})"
                    )
                src = tf.extractfile(info)
                if src is None:  # pragma: no cover - isfile() members always have data
                    raise InstallError(f"member {member!r} of the tar archive has no data")
                with src:
                    _copy_stream(src, dest_path)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise InstallError(f"cannot read archive {archive_path}: {exc}") from None
    return kind


def safe_extract_tar(archive_path: str, dest_dir: str) -> None:
    """Extract a source tarball, refusing absolute paths, ``..`` and links leaving ``dest_dir``."""
    try:
        with tarfile.open(archive_path, "r:*") as tf:
            members = tf.getmembers()
            for m in members:
                name = normalize_member(m.name)
                if m.name.startswith("/") or name == ".." or name.startswith("../"):
                    raise InstallError(f"source archive member {m.name!r} points outside the archive")
                if m.issym() or m.islnk():
                    target = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
                    if m.islnk():
                        target = normalize_member(m.linkname)
                    if m.linkname.startswith("/") or target == ".." or target.startswith("../"):
                        raise InstallError(f"source archive link {m.name!r} points outside the archive")
                elif not (m.isfile() or m.isdir()):
                    raise InstallError(f"source archive member {m.name!r} is not a file or directory")
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest_dir, members=members, filter="data")
            else:  # pragma: no cover - Python without the extraction filters backport
                tf.extractall(dest_dir, members=members)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InstallError(f"cannot extract source archive {archive_path}: {exc}") from None


# ---------------------------------------------------------------------------- downloads

def check_url(url: str, allow_http: bool) -> None:
    """Only https, or http when explicitly allowed."""
    scheme = (url or "").split(":", 1)[0].lower() if ":" in (url or "") else ""
    if scheme == "https":
        return
    if scheme == "http":
        if allow_http:
            return
        raise InstallError(
            f"url {url!r} uses plain http: use https, or set allow_http=true to accept an "
            "unencrypted download (the checksum still protects the content)"
        )
    raise InstallError(f"url {url!r} must start with https:// (or http:// with allow_http=true)")


def download(fetch: t.Callable[[str], t.Tuple[t.Any, t.Dict[str, t.Any]]], url: str, dest_path: str,
             allow_http: bool = False) -> str:
    """Download ``url`` to ``dest_path`` with ``fetch`` (``fetch_url``-shaped); return its sha256."""
    check_url(url, allow_http)
    try:
        resp, info = fetch(url)
    except Exception as exc:  # fetch_url raises only on programming errors, be safe anyway
        raise InstallError(f"download of {url} failed: {exc}") from None
    status = info.get("status")
    if resp is None or status != 200:
        raise InstallError(
            f"download of {url} failed: HTTP status {status}: {info.get('msg', 'no message')}; "
            "nothing was installed"
        )
    final = info.get("url") or url
    if final != url:
        try:
            check_url(final, allow_http)
        except InstallError as exc:
            raise InstallError(f"download of {url} was redirected to {final}: {exc}") from None
    h = hashlib.sha256()
    try:
        with open(dest_path, "wb") as out:
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise InstallError(f"download of {url} failed while reading: {exc}") from None
    finally:
        close = getattr(resp, "close", None)
        if close:
            close()
    return h.hexdigest()


# ---------------------------------------------------------------------------- manifest

def manifest_path(install_dir: str) -> str:
    return os.path.join(install_dir, MANIFEST_NAME)


def read_manifest(install_dir: str) -> t.Optional[t.Dict[str, t.Any]]:
    """The manifest as a dict, ``None`` when missing or unreadable (treated as not installed)."""
    try:
        with open(manifest_path(install_dir), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        return None
    return data


def render_json(data: t.Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def build_manifest(path: str, info: DaemonInfo, sha256: str, request: "Request",
                   identity: t.Dict[str, t.Any], artifact_sha256: t.Optional[str],
                   created_install_dir: bool) -> t.Dict[str, t.Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "installed_by": INSTALLED_BY,
        "path": path,
        "version": info.version_string,
        "version_raw": info.version_raw,
        "sha256": sha256,
        "method": request.method,
        "request": identity,
        "artifact_sha256": artifact_sha256,
        "created_install_dir": created_install_dir,
    }


def decide_up_to_date(manifest: t.Optional[t.Dict[str, t.Any]], binary_sha256: t.Optional[str],
                      identity: t.Dict[str, t.Any], version: t.Optional[str]) -> t.Tuple[bool, str]:
    """Is the installed binary what this request asks for? Returns ``(up_to_date, reason)``.

    Up to date means: a manifest exists, the binary exists with the manifest's sha256, the
    manifest was written for the same source (``identity``) and the recorded version
    satisfies ``version``. Then nothing needs downloading or building.
    """
    if manifest is None:
        return False, "not installed by this module yet (no manifest)"
    if binary_sha256 is None:
        return False, "the binary is missing"
    if manifest.get("sha256") != binary_sha256:
        return False, "the binary was changed since it was installed (sha256 differs from the manifest)"
    old = manifest.get("request") or {}
    if old != identity:
        keys = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
        return False, f"the request changed ({', '.join(keys)})"
    if version:
        try:
            ok = satisfies(parse_version(str(manifest.get("version"))), version)
        except VersionError:
            ok = False
        if not ok:
            return False, f"installed version {manifest.get('version')} does not satisfy {version}"
    return True, f"virtiofsd {manifest.get('version')} is installed from the same request"


# ---------------------------------------------------------------------------- binary checks

def probe(path: str, run: RunCallable) -> DaemonInfo:
    try:
        return probe_daemon(path, run)
    except VirtiofsdError as exc:
        raise InstallError(str(exc)) from None


# ---------------------------------------------------------------------------- cargo

def render_cargo_config(registry_dir: str) -> str:
    """``.cargo/config.toml`` replacing crates.io with a local directory source, offline."""
    # json.dumps gives a valid TOML basic string (same escapes).
    return (
        "[source.crates-io]\n"
        f'replace-with = "{CARGO_SOURCE_NAME}"\n\n'
        f"[source.{CARGO_SOURCE_NAME}]\n"
        f"directory = {json.dumps(registry_dir)}\n\n"
        "[net]\n"
        "offline = true\n"
    )


def read_cargo_package(cargo_toml: str) -> t.Tuple[t.Optional[str], t.Optional[str]]:
    """``(name, version)`` from the ``[package]`` table of a Cargo.toml text."""
    name = version = None
    section = None
    for raw in cargo_toml.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[] \t")
            continue
        if section != "package":
            continue
        m = re.match(r'^(name|version)\s*=\s*"([^"]*)"', line)
        if m:
            if m.group(1) == "name":
                name = m.group(2)
            else:
                version = m.group(2)
    return name, version


def find_source_root(directory: str) -> str:
    """``directory`` itself when it has a Cargo.toml, else its single top-level subdirectory."""
    if os.path.isfile(os.path.join(directory, "Cargo.toml")):
        return directory
    subdirs = [os.path.join(directory, d) for d in sorted(os.listdir(directory))
               if os.path.isdir(os.path.join(directory, d))]
    roots = [d for d in subdirs if os.path.isfile(os.path.join(d, "Cargo.toml"))]
    if len(roots) == 1:
        return roots[0]
    raise InstallError(
        f"no Cargo.toml at the top of {directory} or in exactly one subdirectory of it; "
        "source_dir/source_archive must hold the virtiofsd crate"
    )


def registry_crates(registry_dir: str, name: str = "virtiofsd") -> t.Dict[str, str]:
    """``{version: directory}`` of crate ``name`` in a directory source (``name-X.Y.Z``)."""
    found = {}
    for path in glob.glob(os.path.join(glob.escape(registry_dir), f"{name}-*")):
        ver = os.path.basename(path)[len(name) + 1:]
        if re.match(r"^\d+\.\d+\.\d+", ver) and os.path.isfile(os.path.join(path, "Cargo.toml")):
            found[ver] = path
    return found


def newest(versions: t.Iterable[str]) -> t.Optional[str]:
    best = None
    for v in versions:
        try:
            key = parse_version(v)
        except VersionError:
            continue
        if best is None or key > best[0]:
            best = (key, v)
    return best[1] if best else None


def output_tail(*texts: str, lines: int = CARGO_OUTPUT_TAIL) -> str:
    combined = "\n".join(x.rstrip() for x in texts if x and x.strip())
    return "\n".join(combined.splitlines()[-lines:])


def find_library(soname: str, lib_dirs: t.Sequence[str] = LIBRARY_DIRS) -> t.Optional[str]:
    for pattern in lib_dirs:
        for d in sorted(glob.glob(pattern)):
            for cand in (soname, soname[:-3] + ".a"):
                p = os.path.join(d, cand)
                if os.path.exists(p):
                    return p
    return None


def missing_build_deps(cargo: t.Optional[str], lib_dirs: t.Sequence[str] = LIBRARY_DIRS) -> t.List[str]:
    """Names of what is missing to build virtiofsd: ``cargo``, ``libseccomp``, ``libcap-ng``."""
    missing = [] if cargo else ["cargo"]
    for lib, soname in BUILD_LIBRARIES.items():
        if find_library(soname, lib_dirs) is None:
            missing.append(lib)
    return missing


def os_family(os_release_text: str) -> t.Optional[str]:
    """``debian`` / ``redhat`` / ``None`` from the text of /etc/os-release."""
    values = {}
    for line in (os_release_text or "").splitlines():
        k, sep, v = line.partition("=")
        if sep:
            values[k.strip()] = v.strip().strip('"').strip("'")
    ids = [values.get("ID", "")] + values.get("ID_LIKE", "").split()
    for i in ids:
        if i in ("debian", "ubuntu"):
            return "debian"
        if i in ("rhel", "fedora", "centos", "rocky", "almalinux"):
            return "redhat"
    return None


def debian_major(os_release_text: str) -> t.Optional[int]:
    values = dict(
        (k.strip(), v.strip().strip('"'))
        for k, sep, v in (line.partition("=") for line in (os_release_text or "").splitlines()) if sep
    )
    if values.get("ID") != "debian":
        return None
    m = re.match(r"^(\d+)", values.get("VERSION_ID", ""))
    return int(m.group(1)) if m else None


def build_deps_message(missing: t.Sequence[str], family: t.Optional[str]) -> str:
    families = [family] if family in BUILD_PACKAGES else ["debian", "redhat"]
    pkgs = "; ".join(
        f"{'Debian/Ubuntu' if f == 'debian' else 'Fedora/RHEL'}: {' '.join(BUILD_PACKAGES[f])}"
        for f in families
    )
    return (
        f"cannot build virtiofsd from source: missing {', '.join(missing)}. Install the build "
        f"dependencies first ({pkgs}), e.g. with ansible.builtin.package, or set cargo_path"
    )


_LINK_ERROR_RE = re.compile(r"cannot find -l(seccomp|cap-ng)|unable to find library -l(seccomp|cap-ng)")


# ---------------------------------------------------------------------------- vhost-user

def descriptor_name(priority: int) -> str:
    return f"{int(priority):02d}{DESCRIPTOR_SUFFIX}"


def render_descriptor(binary: str, features: t.Sequence[str], masks: t.Sequence[str]) -> str:
    """A vhost-user descriptor for ``binary``; ``tags`` (free-form in QEMU's schema) mark it
    as ours and record the masks it owns."""
    tags = [MANAGED_TAG] + [f"{MASKS_TAG_PREFIX}{m}" for m in sorted(masks)]
    return render_json({
        "description": f"Rust virtiofsd (managed by {MANAGER})",
        "type": "fs",
        "binary": binary,
        "features": list(features),
        "tags": tags,
    })


# ---------------------------------------------------------------------------- the request

@dataclass
class Request:
    """The module's parameters, validated."""

    state: str = "present"
    method: t.Optional[str] = None
    version: t.Optional[str] = None
    url: t.Optional[str] = None
    checksum: t.Optional[str] = None
    checksum_required: bool = True
    member: str = DEFAULT_MEMBER
    allow_http: bool = False
    crate_version: t.Optional[str] = None
    source_dir: t.Optional[str] = None
    source_archive: t.Optional[str] = None
    cargo_registry_dir: t.Optional[str] = None
    cargo_path: t.Optional[str] = None
    install_dir: str = DEFAULT_INSTALL_DIR
    binary_name: str = DEFAULT_BINARY_NAME
    register_vhost_user: bool = False
    vhost_user_priority: int = DEFAULT_VHOST_USER_PRIORITY
    vhost_user_dir: str = CONF_DIR
    mask_legacy: bool = False

    @property
    def path(self) -> str:
        return os.path.join(self.install_dir, self.binary_name)

    def validate(self) -> None:
        if not os.path.isabs(self.install_dir or ""):
            raise InstallError(f"install_dir {self.install_dir!r} must be an absolute path")
        if not self.binary_name or "/" in self.binary_name or self.binary_name.startswith("."):
            raise InstallError(f"binary_name {self.binary_name!r} must be a plain file name")
        if not os.path.isabs(self.vhost_user_dir or ""):
            raise InstallError(f"vhost_user_dir {self.vhost_user_dir!r} must be an absolute path")
        if not 0 <= int(self.vhost_user_priority) <= 99:
            raise InstallError(f"vhost_user_priority {self.vhost_user_priority} must be between 0 and 99")
        if self.version:
            try:
                parse_requirement(self.version)
            except VersionError as exc:
                raise InstallError(f"version: {exc}") from None
        if self.crate_version:
            try:
                parse_version(self.crate_version)
            except VersionError as exc:
                raise InstallError(f"crate_version: {exc}") from None
        if self.checksum:
            parse_checksum(self.checksum)
        if self.state == "absent":
            return
        if self.mask_legacy and not self.register_vhost_user:
            raise InstallError(
                "mask_legacy=true needs register_vhost_user=true: masking the C daemon's descriptor "
                "without registering the Rust one leaves libvirt without a default virtiofsd"
            )
        if self.method == "url":
            if not self.url:
                raise InstallError("method=url needs url (the zip/tar archive or binary to download)")
            check_url(self.url, self.allow_http)
            if not self.checksum and self.checksum_required:
                raise InstallError(
                    "method=url needs checksum (sha256:<hex> of the downloaded file); set "
                    "checksum_required=false to install without verification"
                )
        elif self.method == "source":
            if self.source_dir and self.source_archive:
                raise InstallError("source_dir and source_archive are mutually exclusive")
            for opt in ("source_dir", "cargo_registry_dir"):
                value = getattr(self, opt)
                if value and not os.path.isdir(value):
                    raise InstallError(f"{opt} {value!r} is not a directory")
            if self.checksum and not self.source_archive:
                raise InstallError(
                    "checksum applies to the file at url or to source_archive; with method=source it "
                    "needs source_archive"
                )
            if self.source_archive and not os.path.isfile(self.source_archive):
                raise InstallError(f"source_archive {self.source_archive!r} is not a file")
            if self.cargo_path and not os.access(self.cargo_path, os.X_OK):
                raise InstallError(f"cargo_path {self.cargo_path!r} is not an executable file")
        elif self.method not in METHODS:
            raise InstallError(f"method must be one of {', '.join(METHODS)}, not {self.method!r}")

    def exact_version(self) -> t.Optional[str]:
        """The version this request will end up with, when it is fully determined."""
        if self.crate_version:
            return format_version(parse_version(self.crate_version))
        if self.version and requirement_is_exact(self.version):
            return format_version(parse_requirement(self.version)[1])
        return None


# ---------------------------------------------------------------------------- the installer

@dataclass
class Host:
    """Ansible helpers the installer needs; the module fills these from its AnsibleModule.

    * ``run(argv, cwd=None, environ_update=None) -> (rc, stdout, stderr)`` (``module.run_command``)
    * ``fetch(url) -> (response, info)`` (``fetch_url`` bound to the module)
    * ``move(src, dest)`` (``module.atomic_move``)
    * ``set_attrs(path, mode) -> changed`` (owner/group root and mode, check-mode aware)
    * ``get_bin_path(name, opt_dirs) -> path or None``
    * ``warn(msg)``
    """

    run: RunCallable
    fetch: t.Callable[[str], t.Tuple[t.Any, t.Dict[str, t.Any]]]
    move: t.Callable[[str, str], t.Any]
    set_attrs: t.Callable[[str, int], bool]
    get_bin_path: t.Callable[[str, t.List[str]], t.Optional[str]]
    warn: t.Callable[[str], None]
    tmpdir: str
    check_mode: bool = False
    os_release: str = ""
    euid: int = 0
    package_paths: t.Sequence[str] = PACKAGE_BINARY_PATHS
    vhost_user_system_dirs: t.Sequence[str] = SYSTEM_DIRS
    lib_dirs: t.Sequence[str] = LIBRARY_DIRS


@dataclass
class Outcome:
    changed: bool = False
    actions: t.List[str] = field(default_factory=list)
    info: t.Optional[DaemonInfo] = None
    path: t.Optional[str] = None
    sha256: t.Optional[str] = None
    version: t.Optional[str] = None
    descriptor: t.Optional[str] = None
    masks: t.List[str] = field(default_factory=list)

    def act(self, text: str) -> None:
        self.changed = True
        self.actions.append(text)


def _write_file_atomic(host: Host, path: str, content: str, mode: int) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".virtiofs-libvirt-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.chmod(tmp, mode)
        host.move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    host.set_attrs(path, mode)


def _remove(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


class Installer:
    """Present/absent logic of the ``virtiofsd`` module."""

    def __init__(self, request: Request, host: Host) -> None:
        self.req = request
        self.host = host
        self._probe_cache: t.Dict[str, t.Optional[DaemonInfo]] = {}

    # -------------------------------------------------------------- probing helpers
    def _run_simple(self, argv: t.List[str]) -> t.Tuple[int, str, str]:
        return self.host.run(argv)

    def probe(self, path: str) -> DaemonInfo:
        return probe(path, self._run_simple)

    def check_daemon(self, info: DaemonInfo, what: str) -> None:
        """Refuse anything but a Rust virtiofsd satisfying the requested version."""
        problem = rust_daemon_problem(info, what, self.req.version)
        if problem:
            raise InstallError(f"{problem}; nothing was installed (install the Rust virtiofsd: fix the url/source or the version)")

    def quick_version(self, path: str) -> t.Optional[DaemonInfo]:
        """``--version`` only (cheap), cached; ``None`` when it does not run."""
        real = os.path.realpath(path)
        if real not in self._probe_cache:
            try:
                ver = probe_version(path, self._run_simple)
                self._probe_cache[real] = DaemonInfo(path, ver.implementation, ver.version, ver.raw)
            except VirtiofsdError:
                self._probe_cache[real] = None
        return self._probe_cache[real]

    # -------------------------------------------------------------- discovery
    def vhost_dirs(self) -> t.List[str]:
        dirs = list(self.host.vhost_user_system_dirs)
        if self.req.vhost_user_dir not in dirs:
            dirs.append(self.req.vhost_user_dir)
        return dirs

    def discover(self) -> t.Dict[str, t.Any]:
        """Legacy C daemons and every vhost-user descriptor with the binary it points at."""
        found = lookup(self.vhost_dirs())
        descs = found.descriptors
        desc_list = []
        for d in descs:
            entry: t.Dict[str, t.Any] = {
                "file": d.path,
                "empty": d.empty,
                "type": d.type,
                "binary": d.binary,
                "implementation": None,
                "version": None,
                "managed": d.managed,
                "masked_by": found.by_path.get(d.path, {}).get("masked_by"),
                "overridden_by": found.by_path.get(d.path, {}).get("overridden_by"),
                "selected": found.selected is not None and d.path == found.selected.path,
                "error": d.error,
            }
            if d.binary:
                if os.path.exists(d.binary):
                    info = self.quick_version(d.binary)
                    if info is not None:
                        entry["implementation"] = info.implementation
                        entry["version"] = info.version_string
                else:
                    entry["error"] = f"binary {d.binary} does not exist"
            desc_list.append(entry)
        candidates = list(self.host.package_paths) + [d.binary for d in descs if d.binary]
        legacy: t.Dict[str, t.Dict[str, t.Any]] = {}
        for path in candidates:
            if not path or path in legacy or not os.path.isfile(path) or not os.access(path, os.X_OK):
                continue
            info = self.quick_version(path)
            if info is None or not info.is_c:
                continue
            real = os.path.realpath(path)
            legacy[path] = {
                "path": path,
                "realpath": real,
                "version": info.version_string,
                "version_raw": info.version_raw,
                "descriptors": [
                    e["file"] for e in desc_list
                    if e["binary"] and os.path.realpath(e["binary"]) == real
                ],
            }
        return {"legacy_daemons": list(legacy.values()), "vhost_user_descriptors": desc_list}

    def find_package_binary(self) -> DaemonInfo:
        seen = []
        for path in self.host.package_paths:
            if not os.path.isfile(path) or not os.access(path, os.X_OK):
                continue
            quick = self.quick_version(path)
            if quick is None:
                seen.append(f"{path} (does not run)")
                continue
            if not quick.is_rust:
                seen.append(f"{path} ({quick.version_raw!r}, {'legacy C daemon' if quick.is_c else 'unknown'})")
                continue
            if self.req.version and (quick.version is None or not satisfies(quick.version, self.req.version)):
                seen.append(f"{path} (Rust {quick.version_string}, does not satisfy {self.req.version})")
                continue
            untrusted = path_problem(path, "the package's virtiofsd")  # libvirt runs it as root
            if untrusted is not None:
                raise InstallError(f"{untrusted}. Nothing was changed.")
            return self.probe(path)
        found = f"; found: {', '.join(seen)}" if seen else ""
        major = debian_major(self.host.os_release)
        if major is not None and major <= 12:
            hint = f"(Debian {major} has none: use method url or source)"
        else:
            hint = ("(install the distribution's virtiofsd package first, e.g. with "
                    "ansible.builtin.package name=virtiofsd, or use method url or source)")
        wanted = f" satisfying {self.req.version}" if self.req.version else ""
        raise InstallError(
            f"no Rust virtiofsd package found{wanted} (looked at {', '.join(self.host.package_paths)}){found} {hint}"
        )

    # -------------------------------------------------------------- identity
    def identity(self) -> t.Dict[str, t.Any]:
        r = self.req
        if r.method == "url":
            return {
                "method": "url",
                "url": r.url,
                "checksum": f"sha256:{parse_checksum(r.checksum)}" if r.checksum else None,
                "member": normalize_member(r.member),
            }
        archive_sha = sha256_file(r.source_archive) if r.source_archive else None
        return {
            "method": "source",
            "crate_version": r.crate_version,
            "source_dir": os.path.abspath(r.source_dir) if r.source_dir else None,
            "source_archive": os.path.abspath(r.source_archive) if r.source_archive else None,
            "source_archive_sha256": archive_sha,
            "cargo_registry_dir": os.path.abspath(r.cargo_registry_dir) if r.cargo_registry_dir else None,
        }

    # -------------------------------------------------------------- install dir
    def check_install_dir(self) -> bool:
        """Refuse an install_dir others can write to; return True when it exists."""
        d = self.req.install_dir
        untrusted = path_problem(d, "install_dir", (0, self.host.euid))  # it and its parents
        if untrusted is not None:
            raise InstallError(str(untrusted))
        try:
            st = os.stat(d)
        except FileNotFoundError:
            parent = os.path.dirname(d.rstrip("/")) or "/"
            while not os.path.exists(parent):
                parent = os.path.dirname(parent)
            pst = os.stat(parent)
            if pst.st_mode & stat.S_IWOTH and not pst.st_mode & stat.S_ISVTX:
                raise InstallError(f"install_dir's parent {parent} is writable by everyone; choose another install_dir")
            return False
        if not stat.S_ISDIR(st.st_mode):
            raise InstallError(f"install_dir {d} exists and is not a directory")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise InstallError(
                f"install_dir {d} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
                "the daemon runs as root, so use a dedicated directory (chmod go-w, or another install_dir)"
            )
        if st.st_uid not in (0, self.host.euid):
            raise InstallError(f"install_dir {d} is owned by uid {st.st_uid}, not root; use a root-owned directory")
        return True

    # -------------------------------------------------------------- present
    def present(self) -> t.Dict[str, t.Any]:
        self.req.validate()
        out = Outcome()
        before = self.state_snapshot()
        if self.req.method == "package":
            info = self.find_package_binary()
            out.info, out.path, out.version = info, info.path, info.version_string
            out.sha256 = sha256_file(info.path)
        else:
            self.install(out)
        self.ensure_vhost_user(out)
        after = before if not out.changed else self.predicted_snapshot(out)
        return self.result(out, before, after)

    def install(self, out: Outcome) -> None:
        r = self.req
        path = r.path
        dir_exists = self.check_install_dir()
        manifest = read_manifest(r.install_dir)
        current_sha = sha256_file(path)
        identity = self.identity()
        up_to_date, reason = decide_up_to_date(manifest, current_sha, identity, r.version)
        out.path = path
        if up_to_date:
            info = self.probe(path)
            self.check_daemon(info, path)
            out.info, out.sha256, out.version = info, current_sha, info.version_string
            if self.host.set_attrs(path, 0o755):
                out.act(f"set owner root and mode 0755 on {path}")
            return
        source = r.url if r.method == "url" else self._describe_source()
        out.act(f"install virtiofsd into {path} from {source} ({reason})")
        if self.host.check_mode:
            out.version = r.exact_version()
            return
        if self.host.euid != 0:
            raise InstallError("installing virtiofsd needs root (use become: true)")
        created = False
        if not dir_exists:
            os.makedirs(r.install_dir, mode=0o755)
            created = True
        staged = None
        try:
            if created:
                self.host.set_attrs(r.install_dir, 0o755)
            fd, staged = tempfile.mkstemp(dir=r.install_dir, prefix=".virtiofsd-", suffix=".tmp")
            os.close(fd)
            if r.method == "url":
                artifact_sha = self._stage_from_url(staged)
            else:
                artifact_sha = self._stage_from_source(staged)
            os.chmod(staged, 0o755)
            info = self.probe(staged)
            self.check_daemon(info, f"the new binary from {source}")
            if r.crate_version and info.version_string != format_version(parse_version(r.crate_version)):
                raise InstallError(
                    f"the binary built from {source} reports version {info.version_string}, "
                    f"not crate_version {r.crate_version}"
                )
            new_sha = sha256_file(staged)
            self.host.move(staged, path)
            staged = None
            self.host.set_attrs(path, 0o755)
            info.path = path
            data = build_manifest(path, info, t.cast(str, new_sha), r, identity, artifact_sha,
                                  created or bool((manifest or {}).get("created_install_dir")))
            _write_file_atomic(self.host, manifest_path(r.install_dir), render_json(data), 0o644)
        except BaseException:
            if staged and os.path.exists(staged):
                os.unlink(staged)
            if created:
                shutil.rmtree(r.install_dir, ignore_errors=True)
            raise
        out.info, out.sha256, out.version = info, new_sha, info.version_string

    def _describe_source(self) -> str:
        r = self.req
        if r.source_dir:
            return f"source_dir {r.source_dir}"
        if r.source_archive:
            return f"source_archive {r.source_archive}"
        crate = f"crate virtiofsd {r.crate_version or '(newest)'}"
        return f"{crate} from {r.cargo_registry_dir}" if r.cargo_registry_dir else f"{crate} from crates.io"

    def _stage_from_url(self, staged: str) -> str:
        r = self.req
        fd, archive = tempfile.mkstemp(dir=self.host.tmpdir, prefix="virtiofsd-download-")
        os.close(fd)
        try:
            sha = download(self.host.fetch, t.cast(str, r.url), archive, r.allow_http)
            if r.checksum:
                wanted = parse_checksum(r.checksum)
                if sha != wanted:
                    raise InstallError(
                        f"checksum mismatch for {r.url}: expected sha256:{wanted}, got sha256:{sha}; "
                        "nothing was installed (check the url or update checksum)"
                    )
            else:
                self.host.warn(f"installed {r.url} without checksum verification (sha256:{sha})")
            extract_member(archive, r.member, staged)
            return sha
        finally:
            _remove(archive)

    def _stage_from_source(self, staged: str) -> t.Optional[str]:
        r = self.req
        cargo = r.cargo_path or self.host.get_bin_path(
            "cargo", [os.path.expanduser(d) for d in CARGO_OPT_DIRS])
        missing = missing_build_deps(cargo, self.host.lib_dirs)
        family = os_family(self.host.os_release)
        if missing:
            raise InstallError(build_deps_message(missing, family))
        build = tempfile.mkdtemp(dir=self.host.tmpdir, prefix="virtiofsd-build-")
        try:
            archive_sha = None
            src = None
            if r.source_dir:
                src = find_source_root(r.source_dir)
            elif r.source_archive:
                if r.checksum:
                    archive_sha = verify_checksum(r.source_archive, r.checksum, f"source_archive {r.source_archive}")
                else:
                    archive_sha = sha256_file(r.source_archive)
                unpack = os.path.join(build, "unpack")
                os.mkdir(unpack)
                safe_extract_tar(r.source_archive, unpack)
                src = find_source_root(unpack)
            elif r.cargo_registry_dir:
                crates = registry_crates(r.cargo_registry_dir)
                ver = format_version(parse_version(r.crate_version)) if r.crate_version else newest(crates)
                if not ver or ver not in crates:
                    have = ", ".join(sorted(crates)) or "none"
                    raise InstallError(
                        f"crate virtiofsd {r.crate_version or ''} not found in cargo_registry_dir "
                        f"{r.cargo_registry_dir} (virtiofsd versions there: {have}); set crate_version "
                        "to one of them or give source_dir/source_archive"
                    )
                src = crates[ver]
            env = {"CARGO_TARGET_DIR": os.path.join(build, "target")}
            if src is None:
                # Online: cargo fetches the crate from crates.io.
                root = os.path.join(build, "root")
                argv = [t.cast(str, cargo), "install", "virtiofsd", "--root", root, "--locked"]
                if r.crate_version:
                    argv += ["--version", f"={format_version(parse_version(r.crate_version))}"]
                cwd = build
                built = os.path.join(root, "bin", "virtiofsd")
            else:
                with open(os.path.join(src, "Cargo.toml"), encoding="utf-8") as f:
                    name, ver = read_cargo_package(f.read())
                if name != "virtiofsd":
                    raise InstallError(f"{src}/Cargo.toml is crate {name!r}, not virtiofsd")
                if r.crate_version and ver != format_version(parse_version(r.crate_version)):
                    raise InstallError(
                        f"{src} holds virtiofsd {ver}, not crate_version {r.crate_version}"
                    )
                if r.version and ver and not satisfies(parse_version(ver), r.version):
                    raise InstallError(f"{src} holds virtiofsd {ver}, which does not satisfy version {r.version!r}")
                cwd = os.path.join(build, "src")
                shutil.copytree(src, cwd, symlinks=True,
                                ignore=shutil.ignore_patterns("target", ".git"))
                argv = [t.cast(str, cargo), "build", "--release"]
                if r.cargo_registry_dir:
                    os.makedirs(os.path.join(cwd, ".cargo"), exist_ok=True)
                    with open(os.path.join(cwd, ".cargo", "config.toml"), "w", encoding="utf-8") as f:
                        f.write(render_cargo_config(os.path.abspath(r.cargo_registry_dir)))
                    # The directory source rarely holds exactly the locked versions.
                    _remove(os.path.join(cwd, "Cargo.lock"))
                    env["CARGO_HOME"] = os.path.join(build, "cargo-home")
                    argv.append("--offline")
                built = os.path.join(build, "target", "release", "virtiofsd")
            rc, stdout, stderr = self.host.run(argv, cwd=cwd, environ_update=env)
            if rc != 0:
                tail = output_tail(stdout, stderr)
                m = _LINK_ERROR_RE.search(tail)
                if m:
                    lib = "libseccomp" if "seccomp" in m.group(0) else "libcap-ng"
                    raise InstallError(f"{build_deps_message([lib], family)}. cargo output (tail):\n{tail}")
                raise InstallError(
                    f"cargo build of virtiofsd failed (rc {rc}); nothing was installed. "
                    f"Command: {' '.join(argv)}. cargo output (last {CARGO_OUTPUT_TAIL} lines):\n{tail}"
                )
            if not os.path.isfile(built):
                raise InstallError(f"cargo succeeded but {built} does not exist")
            shutil.copyfile(built, staged)
            return archive_sha
        finally:
            shutil.rmtree(build, ignore_errors=True)

    # -------------------------------------------------------------- vhost-user
    def managed_descriptors(self, binaries: t.Optional[t.Sequence[str]] = None) -> t.List[Descriptor]:
        found = []
        for d in scan_vhost_user([self.req.vhost_user_dir]):
            if d.managed and (binaries is None or d.binary in binaries):
                found.append(d)
        return found

    def wanted_masks(self, previous: t.Sequence[str]) -> t.List[str]:
        """Names of legacy C descriptors (in lower-priority dirs) to mask in vhost_user_dir."""
        masks = []
        for d in scan_vhost_user([x for x in self.host.vhost_user_system_dirs if x != self.req.vhost_user_dir]):
            if d.empty or d.type != "fs" or not d.binary or not os.path.exists(d.binary):
                continue
            info = self.quick_version(d.binary)
            if info is None or not info.is_c:
                continue
            target = os.path.join(self.req.vhost_user_dir, d.name)
            if os.path.exists(target):
                mine = d.name in previous and os.path.getsize(target) == 0
                if not mine:
                    if os.path.getsize(target) != 0:
                        self.host.warn(f"{target} overrides {d.path}; not masking it")
                    continue
            masks.append(d.name)
        return sorted(set(masks))

    def ensure_vhost_user(self, out: Outcome) -> None:
        r = self.req
        path = t.cast(str, out.path)
        mine = self.managed_descriptors([path])
        previous_masks = sorted({m for d in mine for m in d.masks})
        if not r.register_vhost_user:
            self._unregister(out, mine)
            return
        name = descriptor_name(r.vhost_user_priority)
        target = os.path.join(r.vhost_user_dir, name)
        out.descriptor = target
        masks = self.wanted_masks(previous_masks) if r.mask_legacy else []
        out.masks = masks
        features = out.info.features if out.info is not None else None
        # Our descriptors under another priority (or for another binary of ours) go away.
        for d in mine:
            if d.path != target:
                out.act(f"remove vhost-user descriptor {d.path}")
                if not self.host.check_mode:
                    _remove(d.path)
        for m in previous_masks:
            if m not in masks:
                self._remove_mask(out, m)
        if not self.host.check_mode and not os.path.isdir(r.vhost_user_dir):
            os.makedirs(r.vhost_user_dir, mode=0o755)
        for m in masks:
            mpath = os.path.join(r.vhost_user_dir, m)
            if not os.path.exists(mpath):
                out.act(f"mask legacy vhost-user descriptor {m} with an empty {mpath}")
                if not self.host.check_mode:
                    _write_file_atomic(self.host, mpath, "", 0o644)
        current = read_descriptor(target) if os.path.exists(target) else None
        if features is None:
            if current is None or current.binary != path:
                out.act(f"write vhost-user descriptor {target} -> {path}")
            return
        content = render_descriptor(path, features, masks)
        if current is None or current.data != json.loads(content):
            out.act(f"write vhost-user descriptor {target} -> {path}")
            if not self.host.check_mode:
                _write_file_atomic(self.host, target, content, 0o644)
        elif self.host.set_attrs(target, 0o644):
            out.act(f"set owner root and mode 0644 on {target}")

    def _remove_mask(self, out: Outcome, name: str) -> None:
        mpath = os.path.join(self.req.vhost_user_dir, name)
        if os.path.exists(mpath) and os.path.getsize(mpath) == 0:
            out.act(f"remove mask {mpath}")
            if not self.host.check_mode:
                _remove(mpath)

    def _unregister(self, out: Outcome, descriptors: t.Sequence[Descriptor]) -> None:
        for d in descriptors:
            for m in d.masks:
                self._remove_mask(out, m)
            out.act(f"remove vhost-user descriptor {d.path}")
            if not self.host.check_mode:
                _remove(d.path)

    # -------------------------------------------------------------- absent
    def absent(self) -> t.Dict[str, t.Any]:
        self.req.validate()
        r = self.req
        out = Outcome(path=r.path)
        before = self.state_snapshot()
        binaries = [r.path]
        if r.method == "package":
            binaries += list(self.host.package_paths)
        self._unregister(out, self.managed_descriptors(binaries))
        manifest = read_manifest(r.install_dir)
        if manifest is not None:
            if os.path.lexists(r.path):
                out.act(f"remove {r.path}")
            out.act(f"remove {manifest_path(r.install_dir)}")
            if not self.host.check_mode:
                _remove(r.path)
                _remove(manifest_path(r.install_dir))
                if manifest.get("created_install_dir"):
                    try:
                        os.rmdir(r.install_dir)
                    except OSError:
                        pass  # not empty: something else (a wrapper, say) lives there
        elif os.path.exists(r.path):
            self.host.warn(
                f"{r.path} exists but was not installed by this module (no {MANIFEST_NAME}); left alone"
            )
        after: t.Dict[str, t.Any] = {"path": r.path, "installed": False, "version": None, "sha256": None,
                                     "vhost_user_descriptors": []}
        if not out.changed:
            after = before
        return self.result(out, before, after)

    # -------------------------------------------------------------- results
    def state_snapshot(self) -> t.Dict[str, t.Any]:
        r = self.req
        manifest = read_manifest(r.install_dir)
        return {
            "path": r.path,
            "installed": manifest is not None and os.path.exists(r.path),
            "version": (manifest or {}).get("version"),
            "sha256": sha256_file(r.path) if manifest is not None else None,
            "vhost_user_descriptors": sorted(d.path for d in self.managed_descriptors()),
        }

    def predicted_snapshot(self, out: Outcome) -> t.Dict[str, t.Any]:
        if self.host.check_mode:
            snap = self.state_snapshot()
            if self.req.method != "package":
                snap.update(installed=True, version=out.version, sha256=out.sha256)
            descs = set(snap["vhost_user_descriptors"])
            if self.req.register_vhost_user and out.descriptor:
                descs = {d for d in descs if os.path.basename(d) != os.path.basename(out.descriptor)}
                descs.add(out.descriptor)
            elif not self.req.register_vhost_user:
                descs = set()
            snap["vhost_user_descriptors"] = sorted(descs)
            return snap
        return self.state_snapshot()

    def result(self, out: Outcome, before: t.Dict[str, t.Any], after: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        found = self.discover()
        info = out.info
        return {
            "changed": out.changed,
            "actions": out.actions,
            "path": out.path,
            "version": info.version_string if info is not None else out.version,
            "implementation": info.implementation if info is not None else None,
            "capabilities": info.capabilities if info is not None else None,
            "supported_options": sorted(info.supported_options) if info is not None else [],
            "sha256": out.sha256,
            "method": self.req.method,
            "vhost_user_descriptor": out.descriptor,
            "masked": out.masks,
            "legacy_daemons": found["legacy_daemons"],
            "vhost_user_descriptors": found["vhost_user_descriptors"],
            "diff": {"before": before, "after": after},
        }
