# SPDX-License-Identifier: GPL-3.0-or-later
"""Parsing virtiofsd's own output (``--version``, ``--help``, ``--print-capabilities``).

Fixtures under ``fixtures/`` are real captures: the Rust virtiofsd 1.13.2 the lab builds and
Debian 12's C daemon (``/usr/lib/qemu/virtiofsd``). Tests that run a daemon use a real
subprocess runner and skip when the binary is not there.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd import (
    DaemonInfo,
    VirtiofsdError,
    check_daemon,
    parse_capabilities,
    parse_help_options,
    parse_version_output,
    probe_capabilities,
    probe_daemon,
    probe_version,
)

FIXTURES = Path(__file__).parent / "fixtures"
C_DAEMON = "/usr/lib/qemu/virtiofsd"


def real_run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def rust_binary() -> str | None:
    """The Rust virtiofsd from the lab (lab.json), or $VIRTIOFSD_RUST."""
    candidates = [os.environ.get("VIRTIOFSD_RUST")]
    lab = Path("/var/lib/virtiofs-libvirt-lab/lab.json")
    if lab.exists():
        candidates.append(json.loads(lab.read_text()).get("virtiofsd_binary"))
    for cand in candidates:
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


# --- --version ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, impl, version, suffix",
    [
        ("virtiofsd 1.13.2\n", "rust", (1, 13, 2), ""),
        ("virtiofsd 1.0.0", "rust", (1, 0, 0), ""),
        ("virtiofsd 1.8.0-dirty\n", "rust", (1, 8, 0), "-dirty"),
        ("virtiofsd 1.7.2-dirty\n", "rust", (1, 7, 2), "-dirty"),
        ("\n  virtiofsd 1.10.1  \n", "rust", (1, 10, 1), ""),
    ],
)
def test_version_rust(text, impl, version, suffix):
    ver = parse_version_output(text)
    assert ver.implementation == impl
    assert ver.version == version
    assert ver.suffix == suffix
    assert ver.is_rust and not ver.is_c
    assert ver.raw == text.strip()


def test_version_c_real_fixture():
    text = fixture("virtiofsd-c-7.2-version.txt")
    assert len(text.strip().splitlines()) == 3
    ver = parse_version_output(text)
    assert ver.implementation == "c"
    assert ver.is_c and not ver.is_rust
    assert ver.version == (7, 2, 22)
    assert ver.version_string == "7.2.22"
    assert ver.build == "Debian 1:7.2+dfsg-7+deb12u18+b3"
    assert ver.raw == "virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"


@pytest.mark.parametrize("text", ["virtiofsd version 5.2.0\n", "virtiofsd version 6.2.0 (Debian 1:6.2+dfsg-2ubuntu6)\nx\n"])
def test_version_c_other(text):
    ver = parse_version_output(text)
    assert ver.implementation == "c"
    assert ver.version[0] in (5, 6)


@pytest.mark.parametrize(
    "text",
    ["", "\n", "qemu-system-x86_64 7.2.0", "virtiofsd", "virtiofsd 1.13", "virtiofsd 1.13.2 extra", "Virtiofsd 1.13.2",
     "error: unexpected argument '--version' found"],
)
def test_version_unknown(text):
    ver = parse_version_output(text)
    assert ver.implementation is None
    assert ver.version is None
    assert ver.version_string is None


def test_version_rust_real_fixture():
    path = FIXTURES / "virtiofsd-rust-1.13.2-version.txt"
    if not path.exists():
        pytest.skip("Rust 1.13.2 fixture not captured yet (needs the lab's virtiofsd)")
    ver = parse_version_output(path.read_text())
    assert (ver.implementation, ver.version, ver.raw) == ("rust", (1, 13, 2), "virtiofsd 1.13.2")


# --- --help ------------------------------------------------------------------------------------

def test_help_c_real_fixture():
    opts = parse_help_options(fixture("virtiofsd-c-7.2-help.txt"))
    assert opts == {
        "--help", "--version", "--print-capabilities", "--syslog", "--daemonize", "--rlimit-nofile",
        "--socket-path", "--socket-group", "--fd", "--thread-pool-size",
    }


RUST_1132_OPTIONS = {
    "--shared-dir", "--tag", "--socket", "--socket-path", "--socket-group", "--fd", "--thread-pool-size",
    "--xattr", "--posix-acl", "--xattrmap", "--sandbox", "--readonly", "--seccomp", "--announce-submounts",
    "--no-announce-submounts", "--inode-file-handles", "--cache", "--allow-mmap", "--no-readdirplus",
    "--writeback", "--allow-direct-io", "--print-capabilities", "--modcaps", "--log-level", "--syslog",
    "--rlimit-nofile", "--no-killpriv-v2", "--killpriv-v2", "--security-label", "--uid-map", "--gid-map",
    "--translate-uid", "--translate-gid", "--preserve-noatime", "--migration-mode", "--migration-on-error",
    "--migration-verify-handles", "--migration-confirm-paths", "--help", "--version",
}


def test_help_rust_real_fixture():
    path = FIXTURES / "virtiofsd-rust-1.13.2-help.txt"
    if not path.exists():
        pytest.skip("Rust 1.13.2 fixture not captured yet (needs the lab's virtiofsd)")
    opts = parse_help_options(path.read_text())
    assert opts == RUST_1132_OPTIONS
    # mentioned only inside descriptions, never defined: must not leak in
    assert "--uid" not in opts and "--cache=" not in opts


def test_help_ignores_description_mentions():
    text = (
        "Options:\n"
        "      --posix-acl\n"
        "          Enable support for posix ACLs (implies --xattr)\n"
        "          --xattrmap is not defined here either\n"
        "  -o <compat_options>\n"
        "  -V, --version\n"
    )
    assert parse_help_options(text) == {"--posix-acl", "--version"}


def test_help_structopt_layout():
    # clap 2 / structopt layout used before 1.7.1: 8-space indented, values in <...>
    text = (
        "FLAGS:\n"
        "        --allow-direct-io    Honor the O_DIRECT flag\n"
        "    -h, --help               Prints help information\n"
        "OPTIONS:\n"
        "        --cache <cache>      The caching policy [default: auto]\n"
    )
    assert parse_help_options(text) == {"--allow-direct-io", "--help", "--cache"}


# --- --print-capabilities ----------------------------------------------------------------------

def test_capabilities_c_real_fixture():
    caps = parse_capabilities(fixture("virtiofsd-c-7.2-capabilities.json"))
    assert caps == {"type": "fs", "features": []}


def test_capabilities_rust_features():
    text = '{\n  "type": "fs",\n  "features": [\n    "migrate-precopy",\n    "separate-options"\n  ]\n}\n'
    caps = parse_capabilities(text)
    assert caps["features"] == ["migrate-precopy", "separate-options"]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "did not print JSON"),
        ("wrapper: starting\n{\"type\": \"fs\"}", "did not print JSON"),
        ("[]", "printed JSON that is not an object"),
        ('{"type": "block"}', "printed type 'block', expected 'fs': "),
        ('{"features": []}', "expected 'fs'"),
        ('{"type": "fs", "features": "separate-options"}', "'features' is not a list of strings"),
        ('{"type": "fs", "features": [1]}', "not a list of strings"),
    ],
)
def test_capabilities_refused(text, needle):
    with pytest.raises(VirtiofsdError, match=needle):
        parse_capabilities(text)


# --- probing real binaries ---------------------------------------------------------------------

@pytest.mark.skipif(not os.access(C_DAEMON, os.X_OK), reason="Debian 12 C virtiofsd not installed")
def test_probe_c_daemon_real():
    info = probe_daemon(C_DAEMON, real_run)
    assert isinstance(info, DaemonInfo)
    assert info.is_c and not info.is_rust
    assert info.version == (7, 2, 22)
    assert info.capabilities == {"type": "fs", "features": []}
    assert info.capabilities_error is None
    assert info.supports_option("--fd") and info.supports_option("thread-pool-size")
    assert not info.supports_option("--cache")
    d = info.to_dict()
    assert d["implementation"] == "c" and d["version"] == "7.2.22" and d["features"] == []
    assert d["supported_options"] == sorted(d["supported_options"])
    json.dumps(d)


def test_probe_rust_daemon_real():
    binary = rust_binary()
    if binary is None:
        pytest.skip("no Rust virtiofsd (lab.json virtiofsd_binary or $VIRTIOFSD_RUST)")
    info = probe_daemon(binary, real_run)
    assert info.is_rust
    assert info.version == parse_version_output(real_run([binary, "--version"])[1]).version
    assert "separate-options" in info.features
    assert {"--cache", "--inode-file-handles", "--fd"} <= info.supported_options


def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_probe_not_virtiofsd(tmp_path):
    prog = _script(tmp_path, "notvfs", 'echo "qemu-img version 7.2.0"\n')
    with pytest.raises(VirtiofsdError, match="does not look like virtiofsd"):
        probe_daemon(prog, real_run)


def test_probe_version_failure_rc(tmp_path):
    prog = _script(tmp_path, "broken", 'echo "boom" >&2\nexit 3\n')
    with pytest.raises(VirtiofsdError, match="--version failed with rc 3: boom"):
        probe_version(prog, real_run)


def test_probe_missing_binary(tmp_path):
    with pytest.raises(VirtiofsdError, match="cannot run"):
        probe_version(str(tmp_path / "nope"), real_run)


def test_probe_capabilities_tolerated(tmp_path):
    # a daemon whose capability probe fails: probe_daemon records it, probe_capabilities raises
    prog = _script(
        tmp_path,
        "vfs",
        'case "$1" in\n'
        '  --version) echo "virtiofsd 1.11.0";;\n'
        '  --help) printf "Options:\\n      --shared-dir <SHARED_DIR>\\n  -h, --help\\n";;\n'
        '  *) echo "error: the following required arguments were not provided" >&2; exit 2;;\n'
        "esac\n",
    )
    info = probe_daemon(prog, real_run)
    assert info.version == (1, 11, 0)
    assert info.capabilities is None
    assert "rc 2" in info.capabilities_error
    assert info.supported_options == {"--shared-dir", "--help"}
    with pytest.raises(VirtiofsdError, match="--print-capabilities failed with rc 2"):
        probe_capabilities(prog, real_run)


class _Refused(Exception):
    pass


def test_check_daemon_raises_the_callers_error_with_its_fix():
    rust = DaemonInfo(path="/opt/v", implementation="rust", version=(1, 13, 2), version_raw="virtiofsd 1.13.2")
    assert check_daemon(rust, "binary /opt/v", ">=1.11.1", fix=". fix it", error=_Refused) is None
    with pytest.raises(_Refused) as exc:
        check_daemon(rust, "binary /opt/v", ">=1.14", fix=". fix it", error=_Refused)
    assert str(exc.value) == "binary /opt/v is virtiofsd 1.13.2, which does not satisfy version '>=1.14'. fix it"
    c = DaemonInfo(path="/usr/lib/qemu/virtiofsd", implementation="c", version=(7, 2, 22),
                   version_raw="virtiofsd version 7.2.22")
    with pytest.raises(VirtiofsdError) as exc:
        check_daemon(c, "the daemon")
    assert str(exc.value).startswith("the daemon is not the Rust virtiofsd: it is the legacy C virtiofsd")
