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
* the wrapper (``<binary path>`` when it is not the daemon itself) changed (``mtime`` or
  ``ctime``) after the process started, unless the last change was a mode/owner repair of
  ``virtiofs.libvirt.virtiofsd_wrapper`` that left the bytes alone (see below).

Both facts stay true until the process is gone, so every run reports them again, not only the
run that made the change. ``/proc/stat``'s ``btime`` has whole seconds, so a wrapper changed
less than :data:`CLOCK_SLACK` seconds after the daemon started is not told apart from one
written just before it.

Why ``ctime`` and not ``mtime`` alone: ``cp -p``, ``install -p`` or ``rsync -t`` put other bytes
in place with an old ``mtime``; only ``ctime`` (set by the kernel to the time of any change;
``utime`` cannot set it back) and the inode tell them. But a ``chmod``/``chown`` moves ``ctime`` too, and from the file alone a mode change cannot
be told from an in-place rewrite that restored the old ``mtime``. So the module records its own
mode-only repairs (:func:`record_attribute_repair`): the file's device, inode and ``ctime``
right after the repair, the SHA-256 of its bytes, and its change time before the repair. While
the file still has that device, inode and ``ctime`` *and* those bytes, its change time is the one
before the repair (:func:`changed_at`); any later change (a write, a rename over it, a ``cp -p``,
another ``chmod``) moves ``ctime`` or the bytes, and the file's own times count again. The
records are in :data:`REPAIR_DIR` (tmpfs: they go with the boot, as every daemon they are
about), one root-only JSON file per wrapper; a record that is missing, unreadable, not
root-only or not matching is ignored, which reports the restart (the safe side). What is not
covered: another writer that changes the bytes and puts the same bytes back within the
microseconds between the module's ``stat`` and its ``chmod`` (the path lock only orders runs of
this collection); and a drift made by someone else after the daemon started, which is a
``ctime`` change like any rewrite and stays reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import typing as t

from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import render_json, write_atomic
from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import problem

DELETED_SUFFIX = " (deleted)"
CLOCK_SLACK = 1.0
#: where ``virtiofsd_wrapper`` records its mode-only repairs (one JSON file per wrapper, see the module doc)
REPAIR_DIR = "/run/virtiofs-libvirt/attribute-repairs"
#: a wrapper larger than this is not hashed (no record is written or trusted for it)
_MAX_HASHED = 1 << 20


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


def _record_path(path: str) -> str:
    real = os.path.realpath(path)
    return os.path.join(REPAIR_DIR, hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest() + ".json")


def _sha256(path: str) -> t.Optional[str]:
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_HASHED + 1)
    except OSError:
        return None
    return hashlib.sha256(data).hexdigest() if len(data) <= _MAX_HASHED else None


def _record(path: str) -> t.Optional[t.Dict[str, t.Any]]:
    """The repair record of ``path`` when it is a root-only regular file holding a JSON object."""
    record = _record_path(path)
    try:
        if problem(record, "repair record") is not None or not os.path.isfile(record):
            return None
        with open(record, "rb") as fh:
            data = json.loads(fh.read(65536).decode("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _matches(data: t.Optional[t.Mapping[str, t.Any]], path: str, st: os.stat_result) -> bool:
    """True when the record ``data`` is about ``path`` as it is now (``st``): same file, ctime and bytes."""
    return (
        data is not None
        and data.get("path") == os.path.realpath(path)
        and [data.get("dev"), data.get("ino"), data.get("ctime_ns")] == [st.st_dev, st.st_ino, st.st_ctime_ns]
        and isinstance(data.get("changed_ns"), int)
        and data.get("sha256") == _sha256(path)
    )


def changed_at(path: str) -> t.Optional[float]:
    """When the bytes at ``path`` last changed, as far as the host tells (seconds), ``None`` if unreadable.

    ``max(mtime, ctime)``; when the last change was a mode-only repair the module recorded
    (see the module doc), the change time before that repair instead.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    data = _record(path)
    if _matches(data, path, st):
        return max(st.st_mtime_ns, t.cast(t.Mapping[str, int], data)["changed_ns"]) / 1e9
    return max(st.st_mtime, st.st_ctime)


def record_attribute_repair(path: str, before: os.stat_result, content: bytes) -> bool:
    """Record that ``path``'s last change was a ``chmod``/``chown`` that kept ``content``.

    ``before`` is the ``stat`` of ``path`` taken just before the repair. Nothing is recorded (and
    an older record is dropped) unless ``path`` is still the same file and holds ``content``
    after it. When ``before`` itself matched a record (a repair in two steps), that record's
    change time is kept. Best effort: ``False`` when nothing could be recorded, which only means
    that running daemons are reported as needing a restart.
    """
    try:
        previous = _record(path)
        st = os.stat(path)
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) or _sha256(path) != hashlib.sha256(content).hexdigest():
            forget_attribute_repair(path)
            return False
        changed = max(before.st_mtime_ns, before.st_ctime_ns)
        if _matches(previous, path, before):
            changed = max(before.st_mtime_ns, t.cast(t.Mapping[str, int], previous)["changed_ns"])
        data = {"path": os.path.realpath(path), "dev": st.st_dev, "ino": st.st_ino, "ctime_ns": st.st_ctime_ns,
                "sha256": hashlib.sha256(content).hexdigest(), "changed_ns": changed}
        os.makedirs(REPAIR_DIR, mode=0o700, exist_ok=True)
        write_atomic(_record_path(path), render_json(data), mode=0o600)
        return True
    except OSError:
        return False


def forget_attribute_repair(path: str) -> None:
    """Drop the repair record of ``path`` (its bytes were replaced or it was removed); best effort."""
    try:
        os.unlink(_record_path(path))
    except OSError:
        pass


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
        changed = changed_at(binary_path)
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
