# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Building virtiofsd with cargo: online from crates.io, or offline from a vendored/registry directory.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports: :func:`build` takes the installer's ``Request`` and ``Host``
(``_install``), whose callables run cargo and find it.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile
import typing as t

from ansible_collections.virtiofs.libvirt.plugins.module_utils._archive import safe_extract_tar, sha256_file, verify_checksum
from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import remove_file
from ansible_collections.virtiofs.libvirt.plugins.module_utils._install_error import InstallError
from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import VersionError, format_version, parse_version, satisfies

#: Build dependencies per Ansible ``os_family`` fact (``Debian`` covers Ubuntu, ``RedHat`` Fedora/RHEL).
BUILD_PACKAGES = {
    "Debian": ("libseccomp-dev", "libcap-ng-dev", "cargo"),
    "RedHat": ("libseccomp-devel", "libcap-ng-devel", "cargo"),
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


def build_deps_message(missing: t.Sequence[str], family: t.Optional[str]) -> str:
    """Which build dependencies are missing and how to install them; ``family`` is Ansible's
    ``os_family`` fact (both families are named when it is unknown or ``None``)."""
    families = [family] if family in BUILD_PACKAGES else list(BUILD_PACKAGES)
    pkgs = "; ".join(
        f"{'Debian/Ubuntu' if f == 'Debian' else 'Fedora/RHEL'}: {' '.join(BUILD_PACKAGES[f])}"
        for f in families
    )
    return (
        f"cannot build virtiofsd from source: missing {', '.join(missing)}. Install the build "
        f"dependencies first ({pkgs}), e.g. with ansible.builtin.package, or set cargo_path"
    )


LINK_ERROR_RE = re.compile(r"cannot find -l(seccomp|cap-ng)|unable to find library -l(seccomp|cap-ng)")


def build_virtiofsd(request: t.Any, host: t.Any, staged: str) -> t.Optional[str]:
    """Build virtiofsd as ``request`` (an ``_install.Request``) asks and copy it to ``staged``.

    ``host`` is the installer's ``_install.Host`` (``run``, ``get_bin_path``, ``tmpdir``,
    ``lib_dirs``, ``os_family``). Returns the sha256 of ``source_archive`` (``None`` for other
    sources). Raises :class:`InstallError` naming missing build dependencies or the cargo output.
    """
    r = request
    cargo = r.cargo_path or host.get_bin_path(
        "cargo", [os.path.expanduser(d) for d in CARGO_OPT_DIRS])
    missing = missing_build_deps(cargo, host.lib_dirs)
    family = host.os_family
    if missing:
        raise InstallError(build_deps_message(missing, family))
    build = tempfile.mkdtemp(dir=host.tmpdir, prefix="virtiofsd-build-")
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
                remove_file(os.path.join(cwd, "Cargo.lock"))
                env["CARGO_HOME"] = os.path.join(build, "cargo-home")
                argv.append("--offline")
            built = os.path.join(build, "target", "release", "virtiofsd")
        rc, stdout, stderr = host.run(argv, cwd=cwd, environ_update=env)
        if rc != 0:
            tail = output_tail(stdout, stderr)
            m = LINK_ERROR_RE.search(tail)
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
