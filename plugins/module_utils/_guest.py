# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a Linux guest offers for virtio-fs, and how each managed share stands on it.

Plain Python (no Ansible imports): the ``guest_info`` module reads the files and runs findmnt,
these functions turn what it read into the role's view. Unit-tested in
tests/unit/plugins/module_utils/test__guest.py.

Sources of the facts:
- ``/proc/filesystems``: one file system per line, ``nodev<TAB>virtiofs`` once the kernel
  (built in or module ``virtiofs``) can mount it (proc(5)).
- ``/sys/fs/virtiofs/<n>/tag``: Linux >= 6.9 lists the tag of each virtio-fs device there
  (fs/fuse/virtio_fs.c, "virtio_fs: add sysfs entries"); older kernels have no such directory.
- ``/etc/fstab``: fields split on whitespace, ``#`` starts a comment, as ansible.posix.mount
  reads it (fstab(5)); dump and passno default to 0.
- ``findmnt --json --list``: every mount, stacked ones included (util-linux).
"""

from __future__ import annotations

import glob
import json
import os
import typing as t

# How the role lists what is mounted (the module runs exactly this).
FINDMNT_ARGV = ["findmnt", "--json", "--list", "--output", "TARGET,SOURCE,FSTYPE,OPTIONS"]

SYSFS_VIRTIOFS = "/sys/fs/virtiofs"


class GuestInfoError(Exception):
    """What the guest showed cannot be read; the message says what and why."""


def read_text(path: str, missing: str = "") -> str:
    """The text of ``path``; ``missing`` when it does not exist."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return missing


def sysfs_tags(sysfs: str = SYSFS_VIRTIOFS) -> t.Optional[t.List[str]]:
    """The sorted tags of the virtio-fs devices, or None when the kernel does not list them."""
    if not os.path.isdir(sysfs):
        return None
    return sorted(read_text(p).strip() for p in glob.glob(os.path.join(sysfs, "*", "tag")))


def virtiofs_registered(proc_filesystems: str) -> bool:
    """True when ``/proc/filesystems`` lists virtiofs."""
    for line in proc_filesystems.splitlines():
        fields = line.split()
        if fields and fields[-1] == "virtiofs":
            return True
    return False


def parse_fstab(text: str) -> t.List[t.Dict[str, str]]:
    """The entries of ``/etc/fstab``: src, path, fstype, opts, dump, passno and the line itself."""
    entries = []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        fields = line.split("#")[0].split()
        if len(fields) < 4:
            continue
        entries.append({
            "src": fields[0], "path": fields[1], "fstype": fields[2], "opts": fields[3],
            "dump": fields[4] if len(fields) > 4 else "0",
            "passno": fields[5] if len(fields) > 5 else "0",
            "line": line,
        })
    return entries


def parse_findmnt(stdout: str) -> t.List[t.Dict[str, t.Any]]:
    """The ``filesystems`` list of ``findmnt --json --list`` (target, source, fstype, options)."""
    if not stdout.strip():
        return []
    try:
        data = json.loads(stdout)
    except ValueError as exc:
        raise GuestInfoError(f"findmnt --json printed something that is not JSON ({exc}): {stdout[:200]!r}") from exc
    filesystems = data.get("filesystems") if isinstance(data, dict) else None
    if not isinstance(filesystems, list):
        raise GuestInfoError(f"findmnt --json printed no 'filesystems' list: {stdout[:200]!r}")
    return filesystems


def fstab_current(share: t.Mapping[str, t.Any], lines: t.Sequence[t.Mapping[str, str]]) -> bool:
    """True when every /etc/fstab line for the path of ``share`` (at least one) is the line the
    role writes: ansible.posix.mount (state mounted or present) would leave fstab as it is (it
    compares src, fstype, opts, dump and passno)."""
    return len(lines) > 0 and all(
        line["src"] == share["tag"] and line["fstype"] == "virtiofs" and line["opts"] == share["options"]
        and line["dump"] == "0" and line["passno"] == "0" for line in lines)


def join(shares: t.Sequence[t.Mapping[str, t.Any]], fstab: t.Sequence[t.Mapping[str, str]],
         mounts: t.Sequence[t.Mapping[str, t.Any]], systemd: bool) -> t.List[t.Dict[str, t.Any]]:
    """Each share (the role's normalised entries: tag, path, state, automount, options, ...)
    with what the guest shows at its path. Fields added:

    fstab: the fstab entries for the path; fstab_current: see :func:`fstab_current`;
    at_path: findmnt's entries on the path (several when mounts are stacked); same: those that
    are a virtiofs mount of this tag; other_tag: virtiofs mounts of another tag; autofs: systemd
    automounts (with systemd only); foreign: any other file system type; stop_automount: a
    systemd automount sits on the path and the state does not keep it (mounted without
    automount, unmounted, absent).
    """
    autofs_types = ("autofs",) if systemd else ()
    out = []
    for share in shares:
        path = share.get("path")
        lines = [e for e in fstab if e["path"] == path]
        at = [m for m in mounts if m.get("target") == path]
        virtiofs = [m for m in at if m.get("fstype") == "virtiofs"]
        autofs = [m for m in at if m.get("fstype") in autofs_types]
        state = share.get("state")
        joined = dict(share)
        joined.update({
            "fstab": lines,
            "fstab_current": fstab_current(share, lines) if "tag" in share and "options" in share else False,
            "at_path": at,
            "same": [m for m in virtiofs if m.get("source") == share.get("tag")],
            "other_tag": [m for m in virtiofs if m.get("source") != share.get("tag")],
            "autofs": autofs,
            "foreign": [m for m in at if m.get("fstype") not in ("virtiofs",) + autofs_types],
            "stop_automount": bool(autofs) and (state in ("unmounted", "absent")
                                                or (state == "mounted" and not share.get("automount"))),
        })
        out.append(joined)
    return out


def guest_report(
    shares: t.Sequence[t.Mapping[str, t.Any]],
    fstab_path: str,
    system: str,
    kernel: str,
    service_mgr: str,
    findmnt: t.Optional[str],
    run: t.Callable[[t.List[str]], t.Tuple[int, str, str]],
    proc_filesystems: str = "/proc/filesystems",
    sysfs: str = SYSFS_VIRTIOFS,
) -> t.Dict[str, t.Any]:
    """The whole ``guest_info`` result.

    ``findmnt`` is the path of findmnt (``None`` when it is not installed), ``run(argv)``
    runs it and returns ``(rc, stdout, stderr)``. Raises :class:`GuestInfoError`.
    """
    if findmnt is None:
        raise GuestInfoError("findmnt not found on this guest: install util-linux (it provides findmnt)")
    rc, out, err = run([findmnt] + FINDMNT_ARGV[1:])
    # findmnt exits 1 when it lists nothing
    if rc not in (0, 1):
        raise GuestInfoError(f"{' '.join(FINDMNT_ARGV)} failed (rc {rc}): {err.strip() or out.strip()}")
    mounts = parse_findmnt(out)
    fstab = parse_fstab(read_text(fstab_path))
    return {
        "changed": False,
        "system": system,
        "kernel": kernel,
        "service_mgr": service_mgr,
        "virtiofs_registered": virtiofs_registered(read_text(proc_filesystems)),
        "tags": sysfs_tags(sysfs),
        "fstab": fstab,
        "mounts": mounts,
        "shares": join(shares, fstab, mounts, systemd=service_mgr == "systemd"),
    }
