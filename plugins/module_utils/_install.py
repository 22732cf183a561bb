# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Installing the Rust virtiofsd: the request, the plan and its outcome, the manifest.

Private module_utils: other collections must not import it.

Plain Python. Everything that needs Ansible (running commands, downloading, moving files into
place, setting owner/mode) is passed in as a callable through :class:`Host`, so the logic is
unit-testable and the module stays thin.

Layout of an installation made by this code::

    <install_dir>/<binary_name>               the daemon, root:root 0755
    <install_dir>/.virtiofsd.manifest.json    what was installed and from which request
    <vhost_user_dir>/<NN>-virtiofsd-rust.json optional vhost-user descriptor (tagged as ours)
    <vhost_user_dir>/<name>.json              optional empty masks of legacy C descriptors

The parts live next to it: ``_archive`` (checksums, archive members, safe extraction),
``_download`` (https fetches), ``_cargo`` (cargo builds), ``_vhost_user`` (the descriptor
lookup and the registration), ``_install_error`` (:class:`InstallError`).

The manifest makes repeated runs free of network access: when the binary's sha256 still
matches the manifest and the manifest was written for the same request, nothing is
downloaded or built.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import traceback
import typing as t
from dataclasses import dataclass, field

from ansible_collections.virtiofs.libvirt.plugins.module_utils._archive import extract_member, normalize_member, parse_checksum, sha256_file
from ansible_collections.virtiofs.libvirt.plugins.module_utils._cargo import LIBRARY_DIRS, build_virtiofsd
from ansible_collections.virtiofs.libvirt.plugins.module_utils._download import check_url, download
from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import remove_file, render_json
from ansible_collections.virtiofs.libvirt.plugins.module_utils._install_error import InstallError
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
    DEFAULT_VHOST_USER_PRIORITY,
    MANAGER,
    SYSTEM_DIRS,
    Descriptor,
    Registration,
    lookup,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd import (
    DaemonInfo,
    VirtiofsdError,
    check_daemon,
    probe_daemon,
    probe_version,
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

#: The ways to install (the module's ``method`` choices).
METHODS = ("package", "url", "source")
#: The module's ``state`` choices.
STATES = ("present", "absent")

RunCallable = t.Callable[..., t.Tuple[int, str, str]]


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


# ---------------------------------------------------------------------------- package method

#: Debian releases up to this one ship only the legacy C virtiofsd (docs/reference.md B.3).
DEBIAN_LAST_WITHOUT_RUST_PACKAGE = 12


def package_hint(os_family: t.Optional[str], distribution_major_version: t.Optional[str]) -> str:
    """What to do when method=package finds no Rust virtiofsd, from Ansible's facts.

    Raises :class:`InstallError` when a fact is missing: the hint depends on them.
    """
    if not os_family or not distribution_major_version:
        missing = [name for name, value in (("os_family", os_family),
                                            ("distribution_major_version", distribution_major_version)) if not value]
        raise InstallError(
            f"method=package needs the options os_family and distribution_major_version to say what to do "
            f"(missing: {', '.join(missing)}): gather facts (ansible.builtin.setup) and pass "
            "ansible_facts['os_family'] and ansible_facts['distribution_major_version'], or pass them yourself"
        )
    major = distribution_major_version.split(".", 1)[0]
    if os_family == "Debian" and major.isdigit() and int(major) <= DEBIAN_LAST_WITHOUT_RUST_PACKAGE:
        return f"(Debian {major} has none: use method url or source)"
    return ("(install the distribution's virtiofsd package first, e.g. with "
            "ansible.builtin.package name=virtiofsd, or use method url or source)")


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
        """Raise :class:`InstallError` with the first problem of the request (:meth:`problems`,
        with the checks that look at this host)."""
        for _option, message in self.problems(host=True):
            raise InstallError(message)

    def input_problems(self) -> t.List[t.Tuple[str, str]]:
        """Every problem of the request that needs no host (the host role's plan runs these before
        anything changes): ``(option, message)`` pairs, in the order :meth:`validate` checks them."""
        return list(self.problems(host=False))

    def problems(self, host: bool) -> t.Iterator[t.Tuple[str, str]]:
        """The problems of the request as ``(option, message)``, in order; the checks that look at
        this host's files only with ``host``."""
        if not os.path.isabs(self.install_dir or ""):
            yield "install_dir", f"install_dir {self.install_dir!r} must be an absolute path"
        if not self.binary_name or "/" in self.binary_name or self.binary_name.startswith("."):
            yield "binary_name", f"binary_name {self.binary_name!r} must be a plain file name"
        if not os.path.isabs(self.vhost_user_dir or ""):
            yield "vhost_user_dir", f"vhost_user_dir {self.vhost_user_dir!r} must be an absolute path"
        if not 0 <= int(self.vhost_user_priority) <= 99:
            yield "vhost_user_priority", f"vhost_user_priority {self.vhost_user_priority} must be between 0 and 99"
        if self.version:
            try:
                parse_requirement(self.version)
            except VersionError as exc:
                yield "version", f"version: {exc}"
        if self.crate_version:
            try:
                parse_version(self.crate_version)
            except VersionError as exc:
                yield "crate_version", f"crate_version: {exc}"
        if self.checksum:
            try:
                parse_checksum(self.checksum)
            except InstallError as exc:
                yield "checksum", str(exc)
        if self.state == "absent":
            return
        if self.mask_legacy and not self.register_vhost_user:
            yield "mask_legacy", (
                "mask_legacy=true needs register_vhost_user=true: masking the C daemon's descriptor "
                "without registering the Rust one leaves libvirt without a default virtiofsd"
            )
        if self.method == "url":
            if not self.url:
                yield "url", "method=url needs url (the zip/tar archive or binary to download)"
            else:
                try:
                    check_url(self.url, self.allow_http)
                except InstallError as exc:
                    yield "url", str(exc)
            if not self.checksum and self.checksum_required:
                yield "checksum", (
                    "method=url needs checksum (sha256:<hex> of the downloaded file); set "
                    "checksum_required=false to install without verification"
                )
        elif self.method == "source":
            if self.source_dir and self.source_archive:
                yield "source_dir", "source_dir and source_archive are mutually exclusive"
            for opt in ("source_dir", "cargo_registry_dir"):
                value = getattr(self, opt)
                if host and value and not os.path.isdir(value):
                    yield opt, f"{opt} {value!r} is not a directory"
            if self.checksum and not self.source_archive:
                yield "checksum", (
                    "checksum applies to the file at url or to source_archive; with method=source it "
                    "needs source_archive"
                )
            if host and self.source_archive and not os.path.isfile(self.source_archive):
                yield "source_archive", f"source_archive {self.source_archive!r} is not a file"
            if host and self.cargo_path and not os.access(self.cargo_path, os.X_OK):
                yield "cargo_path", f"cargo_path {self.cargo_path!r} is not an executable file"
        elif self.method not in METHODS:
            yield "method", f"method must be one of {', '.join(METHODS)}, not {self.method!r}"

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

    ``os_family`` and ``distribution_major_version`` are Ansible's facts of the same names
    (``Debian``, ``12``); ``None`` when the play did not gather or pass them.
    """

    run: RunCallable
    fetch: t.Callable[[str], t.Tuple[t.Any, t.Dict[str, t.Any]]]
    move: t.Callable[[str, str], t.Any]
    set_attrs: t.Callable[[str, int], bool]
    get_bin_path: t.Callable[[str, t.List[str]], t.Optional[str]]
    warn: t.Callable[[str], None]
    tmpdir: str
    check_mode: bool = False
    os_family: t.Optional[str] = None
    distribution_major_version: t.Optional[str] = None
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
    #: the daemon binary is installed or replaced in this run (would be, in check mode)
    binary_changed: bool = False

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
        check_daemon(info, what, self.req.version, error=InstallError,
                     fix="; nothing was installed (install the Rust virtiofsd: fix the url/source or the version)")

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
        wanted = f" satisfying {self.req.version}" if self.req.version else ""
        what = f"no Rust virtiofsd package found{wanted} (looked at {', '.join(self.host.package_paths)}){found}"
        try:
            hint = package_hint(self.host.os_family, self.host.distribution_major_version)
        except InstallError as exc:
            raise InstallError(f"{what}; {exc}") from None
        raise InstallError(f"{what} {hint}")

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

    def run(self) -> t.Dict[str, t.Any]:
        """The whole module run for the request's state: :meth:`present` or :meth:`absent`.

        An unexpected ``OSError`` becomes an :class:`InstallError` (message ``virtiofsd: <error>``,
        the traceback in its ``exception``), so the module has one failure path.
        """
        try:
            return self.present() if self.req.state == "present" else self.absent()
        except OSError as exc:
            error = InstallError(f"virtiofsd: {exc}")
            error.exception = traceback.format_exc()
            raise error from exc

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
        out.binary_changed = True
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
            remove_file(archive)

    def _stage_from_source(self, staged: str) -> t.Optional[str]:
        return build_virtiofsd(self.req, self.host, staged)

    # -------------------------------------------------------------- vhost-user
    def registration(self) -> Registration:
        """The vhost-user registration in ``vhost_user_dir`` (``_vhost_user``), with this host's callables."""
        def is_legacy_c(binary: str) -> bool:
            info = self.quick_version(binary)
            return info is not None and info.is_c

        return Registration(
            vhost_user_dir=self.req.vhost_user_dir,
            system_dirs=self.host.vhost_user_system_dirs,
            check_mode=self.host.check_mode,
            is_legacy_c=is_legacy_c,
            write=lambda path, content, mode: _write_file_atomic(self.host, path, content, mode),
            set_attrs=self.host.set_attrs,
            warn=self.host.warn,
        )

    def managed_descriptors(self, binaries: t.Optional[t.Sequence[str]] = None) -> t.List[Descriptor]:
        return self.registration().managed_descriptors(binaries)

    def ensure_vhost_user(self, out: Outcome) -> None:
        r = self.req
        features = out.info.features if out.info is not None else None
        out.descriptor, out.masks = self.registration().ensure(
            out.act, t.cast(str, out.path), features, r.register_vhost_user, r.vhost_user_priority, r.mask_legacy)

    # -------------------------------------------------------------- absent
    def absent(self) -> t.Dict[str, t.Any]:
        self.req.validate()
        r = self.req
        out = Outcome(path=r.path)
        before = self.state_snapshot()
        binaries = [r.path]
        if r.method == "package":
            binaries += list(self.host.package_paths)
        self.registration().unregister(out.act, self.managed_descriptors(binaries))
        manifest = read_manifest(r.install_dir)
        if manifest is not None:
            if os.path.lexists(r.path):
                out.act(f"remove {r.path}")
            out.act(f"remove {manifest_path(r.install_dir)}")
            if not self.host.check_mode:
                remove_file(r.path)
                remove_file(manifest_path(r.install_dir))
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
            "binary_changed": out.binary_changed,
            "actions": out.actions,
            "path": out.path,
            # what AppArmor and SELinux mediate (the host role's rules): the path with every link resolved
            "realpath": os.path.realpath(out.path) if out.path else out.path,
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
