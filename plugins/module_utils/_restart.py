# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A pending restart read from the host: is a running virtiofsd older than its program?

Private module_utils: other collections must not import it.

Plain Python over ``/proc`` readings, no Ansible and no libvirt imports. libvirt starts the
daemon of a share through ``<binary path>`` (the daemon itself or a wrapper that ``exec``\\ s
it), so the process's ``exe`` is the daemon and its start time is when libvirt ran the
wrapper. A running domain needs a full stop and start while either holds:

* the daemon's executable was replaced: ``/proc/PID/exe`` ends with `` (deleted)`` or names
  a file whose device/inode is not the one the process runs;
* the wrapper (``<binary path>`` when it is not the daemon itself) was written or its mode
  changed (``mtime``/``ctime``) after the process started.

Both facts stay true until the process is gone, so every run reports them again, not only the
run that made the change. ``/proc/stat``'s ``btime`` has whole seconds, so a wrapper changed
less than :data:`CLOCK_SLACK` seconds after the daemon started is not told apart from one
written just before it.
"""

from __future__ import annotations

import os
import typing as t

DELETED_SUFFIX = " (deleted)"
CLOCK_SLACK = 1.0


def _read_text(path: str) -> t.Optional[str]:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None


def boot_time(proc: str = "/proc") -> t.Optional[float]:
    """Seconds since the epoch at boot (``btime`` of ``/proc/stat``), ``None`` if unreadable."""
    text = _read_text(os.path.join(proc, "stat"))
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "btime" and parts[1].isdigit():
            return float(parts[1])
    return None


def start_time(pid: int, proc: str = "/proc", ticks: t.Optional[int] = None) -> t.Optional[float]:
    """When process ``pid`` started (seconds since the epoch), ``None`` if unknown.

    Field 22 of ``/proc/PID/stat`` (clock ticks since boot) plus :func:`boot_time`.
    """
    text = _read_text(os.path.join(proc, str(pid), "stat"))
    btime = boot_time(proc)
    if text is None or btime is None:
        return None
    # "pid (comm) state ppid ..." -- comm may hold spaces and parentheses; field 3 is rest[0]
    rest = text.rsplit(")", 1)[-1].split()
    if len(rest) < 20 or not rest[19].isdigit():
        return None
    hz = ticks or os.sysconf("SC_CLK_TCK")
    return btime + int(rest[19]) / float(hz)


def _mtime(path: str) -> t.Optional[float]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return max(st.st_mtime, st.st_ctime)


def daemon_reasons(
    tag: t.Optional[str],
    pid: int,
    binary_path: t.Optional[str],
    proc: str = "/proc",
    ticks: t.Optional[int] = None,
) -> t.List[str]:
    """Why the virtiofsd ``pid`` of share ``tag`` (started through ``binary_path``) is stale.

    An empty list when nothing is known to have changed, or when ``/proc/PID`` cannot be read
    (no such process, or no permission).
    """
    reasons: t.List[str] = []
    link = os.path.join(proc, str(pid), "exe")
    try:
        exe = os.readlink(link)
    except OSError:
        exe = None
    if exe is not None and exe.endswith(DELETED_SUFFIX):
        exe = exe[: -len(DELETED_SUFFIX)]
        reasons.append(
            f"share {tag!r}: its running virtiofsd (pid {pid}) runs {exe}, which was deleted or replaced "
            "since it started: the domain keeps the old program until it is shut down and started"
        )
    elif exe is not None:
        try:
            running, now = os.stat(link), os.stat(exe)
        except OSError:
            running = now = None
        if running is not None and now is not None and (running.st_dev, running.st_ino) != (now.st_dev, now.st_ino):
            reasons.append(
                f"share {tag!r}: {exe} was replaced (new inode) since its virtiofsd (pid {pid}) started: "
                "the domain keeps the old program until it is shut down and started"
            )
    if binary_path and (exe is None or os.path.realpath(binary_path) != exe):
        started = start_time(pid, proc, ticks)
        changed = _mtime(binary_path)
        if started is not None and changed is not None and changed > started + CLOCK_SLACK:
            reasons.append(
                f"share {tag!r}: {binary_path} changed after its virtiofsd (pid {pid}) started: the daemon "
                "keeps the old program and options until the domain is shut down and started"
            )
    return reasons


def domain_reasons(
    shares: t.Iterable[t.Mapping[str, t.Any]],
    find_daemon: t.Callable[[t.Mapping[str, t.Any]], t.Optional[int]],
    proc: str = "/proc",
    ticks: t.Optional[int] = None,
) -> t.List[str]:
    """:func:`daemon_reasons` of every share of a running domain (``shares`` from its live XML).

    ``find_daemon(share)`` gives the pid of the share's virtiofsd (``None`` when not found);
    shares with an external socket (``source_socket``) have no daemon libvirt started.
    """
    reasons: t.List[str] = []
    for share in shares:
        if share.get("source_socket"):
            continue
        pid = find_daemon(share)
        if pid:
            reasons += daemon_reasons(share.get("tag"), pid, share.get("binary_path"), proc, ticks)
    return reasons


def stale_daemons(uri: str) -> t.Callable[[t.Any, t.List[t.Dict[str, t.Any]]], t.List[str]]:
    """``Host.stale_daemons`` of the share engine: :func:`domain_reasons` over the running virtiofsd of ``uri``."""
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._proc import virtiofsd_process

    def reasons(dom: t.Any, shares: t.List[t.Dict[str, t.Any]]) -> t.List[str]:
        return domain_reasons(shares, lambda s: virtiofsd_process(
            dom.name, dom.id, s["alias"], s["source"], uri=uri)["pid"])

    return reasons
