# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The virtiofsd processes libvirt started for running domains, and their log files.

Private module_utils: other collections must not import it.

Plain Python, no Ansible and no libvirt imports. Reads libvirt's pid files (under
``/run/libvirt/qemu`` for ``qemu:///system``) and ``/proc``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import typing as t
from urllib.parse import urlparse

from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import read_bytes

SYSTEM_STATE_DIR = "/run/libvirt/qemu"
SYSTEM_LOG_DIR = "/var/log/libvirt/qemu"
SHORT_NAME_MAX = 20  # VIR_DOMAIN_SHORT_NAME_MAX


def runtime_dirs(uri: str) -> t.Tuple[str, str]:
    """(state dir with pid files, log dir) of the qemu driver for ``uri``."""
    if urlparse(uri).path.rstrip("/") == "/session":
        runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        return os.path.join(runtime, "libvirt", "qemu", "run"), os.path.join(cache, "libvirt", "qemu", "log")
    return SYSTEM_STATE_DIR, SYSTEM_LOG_DIR


def process_info(pid: int, proc: str = "/proc") -> t.Optional[t.Dict[str, t.Any]]:
    raw = read_bytes(f"{proc}/{pid}/cmdline", best_effort=True)
    if raw is None:
        return None
    argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    exe = None
    with contextlib.suppress(OSError):
        exe = os.readlink(f"{proc}/{pid}/exe")
    return {"pid": pid, "cmdline": argv, "exe": exe}


def _children_of(pid: int, proc: str = "/proc") -> t.List[int]:
    out = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        stat = read_bytes(f"{proc}/{entry}/stat", best_effort=True)
        if not stat:
            continue
        # "pid (comm) state ppid ..." -- comm may contain spaces and parentheses
        rest = stat.rsplit(b")", 1)[-1].split()
        if len(rest) > 1 and rest[1].isdigit() and int(rest[1]) == pid:
            out.append(int(entry))
    return sorted(out)


def _source_of(argv: t.Sequence[str]) -> t.Optional[str]:
    for i, arg in enumerate(argv):
        if arg == "--shared-dir" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--shared-dir="):
            return arg.split("=", 1)[1]
        if arg == "-o" and i + 1 < len(argv):
            for item in argv[i + 1].replace("\\,", "\0").split(","):
                if item.startswith("source="):
                    return item[len("source="):].replace("\0", ",")
    return None


def virtiofsd_process(
    domain_name: str,
    domain_id: int,
    alias: t.Optional[str],
    source: t.Optional[str],
    uri: str = "qemu:///system",
    proc: str = "/proc",
) -> t.Dict[str, t.Any]:
    """Find the virtiofsd libvirt started for one share of a running domain.

    libvirt writes ``<state dir>/<id>-<name[:20]>-<alias>-fs.pid`` and logs the daemon's
    output to ``<log dir>/<name>-<alias>-virtiofsd.log``. When the pid file is missing the
    process table is searched for a daemon started with ``--fd=`` for the same source.
    """
    state_dir, log_dir = runtime_dirs(uri)
    info: t.Dict[str, t.Any] = {
        "running": False,
        "pid": None,
        "pid_file": None,
        "cmdline": None,
        "exe": None,
        "children": [],
        "log_path": os.path.join(log_dir, f"{domain_name}-{alias}-virtiofsd.log") if alias else None,
    }
    if alias:
        candidates = [os.path.join(state_dir, f"{domain_id}-{domain_name[:SHORT_NAME_MAX]}-{alias}-fs.pid")]
        candidates += sorted(glob.glob(os.path.join(glob.escape(state_dir), f"{domain_id}-*-{glob.escape(alias)}-fs.pid")))
        for path in candidates:
            raw = read_bytes(path, best_effort=True)
            if raw is None:
                continue
            info["pid_file"] = path
            with contextlib.suppress(ValueError):
                pid = int(raw.strip() or b"0")
                proc_info = process_info(pid, proc)
                if proc_info is not None:
                    info.update(proc_info, running=True)
                    info["children"] = _children_of(pid, proc)
            break
    if not info["running"] and source:
        for entry in sorted(os.listdir(proc), key=lambda e: (len(e), e)):
            if not entry.isdigit():
                continue
            proc_info = process_info(int(entry), proc)
            if not proc_info or not proc_info["cmdline"]:
                continue
            argv = proc_info["cmdline"]
            if any(a.startswith("--fd=") for a in argv) and _source_of(argv) == source:
                info.update(proc_info, running=True)
                info["children"] = _children_of(proc_info["pid"], proc)
                break
    if info["log_path"] is not None:
        info["log_exists"] = os.path.exists(info["log_path"])
    return info
