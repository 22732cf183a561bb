# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether a file that root runs can only be changed by root.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports.

libvirt starts a share's ``<binary path>`` as root. A wrapper or daemon that another user can
replace, or that sits in a directory another user can rename entries of, is a way to root. The
rule is the one of OpenSSH ``StrictModes`` and sudo: the file and every directory on the way to
it from ``/`` must be owned by root and not writable by group or others. A directory owned by
root with the sticky bit (``/tmp``) is accepted: other users may create entries there but not
rename or remove root's. Symbolic links are followed component by component, so the
directories of every link on the way are checked as well as the real path.

A component that does not exist ends the walk: what exists up to there is checked (a wrapper
that is about to be written is checked through its directory and the directory's parents).
"""

from __future__ import annotations

import os
import stat
import typing as t

MAX_SYMLINKS = 40
TRUSTED_UIDS: t.Tuple[int, ...] = (0,)


class UntrustedPathError(Exception):
    """A path whose file or one of its directories can be changed by a user other than root.

    ``path`` is the checked path, ``weak`` the component that is at fault, ``uid`` and
    ``mode`` its owner and permission bits, ``fix`` a shell command that makes it safe.
    """

    def __init__(self, path: str, weak: str, uid: int, mode: int, reasons: t.List[str], fix: str,
                 what: str = "path") -> None:
        self.path = path
        self.weak = weak
        self.uid = uid
        self.mode = mode
        self.reasons = reasons
        self.fix = fix
        self.what = what
        where = "" if weak == path else f" because of {weak}"
        super().__init__(
            f"{what} {path} can be changed by users other than root{where}: {weak} is "
            f"{' and '.join(reasons)} (uid {uid}, mode {stat.S_IMODE(mode):04o}); libvirt runs it "
            f"as root, so it is refused. Fix: {fix}")


def _weakness(st: os.stat_result, trusted_uids: t.Sequence[int]) -> t.List[str]:
    reasons = []
    if st.st_uid not in trusted_uids:
        reasons.append(f"owned by uid {st.st_uid}, not root")
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    sticky_root_dir = (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
                       and st.st_uid in trusted_uids)
    if writable and not sticky_root_dir:
        who = {stat.S_IWGRP: "group", stat.S_IWOTH: "others",
               stat.S_IWGRP | stat.S_IWOTH: "group and others"}[writable]
        reasons.append(f"writable by {who}")
    return reasons


def _fix(component: str, st: os.stat_result, trusted_uids: t.Sequence[int]) -> str:
    parts = []
    if st.st_uid not in trusted_uids:
        parts.append(f"chown root:root {component}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        parts.append(f"chmod go-w {component}")
    return " && ".join(parts)


def walk(path: str) -> t.Iterator[t.Tuple[str, os.stat_result]]:
    """``(component, lstat)`` of ``/`` and every real component on the way to ``path``.

    Symbolic links are resolved one by one (their targets walked from the link's directory,
    which is already yielded); the walk stops at the first component that does not exist.
    Raises :class:`OSError` (``ELOOP``) for too many links, other ``OSError`` s as they come.
    """
    current = "/"
    yield current, os.lstat(current)
    pending = [c for c in path.split("/") if c not in ("", ".")]
    hops = 0
    while pending:
        name = pending.pop(0)
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise OSError(40, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            pending[:0] = [c for c in target.split("/") if c not in ("", ".")]
            continue
        yield candidate, st
        current = candidate


def problem(path: str, what: str = "path",
            trusted_uids: t.Sequence[int] = TRUSTED_UIDS) -> t.Optional[UntrustedPathError]:
    """The first weakness on the way to ``path`` as an error (not raised), ``None`` when safe."""
    if not os.path.isabs(path):
        raise ValueError(f"{what} must be an absolute path, got {path!r}")
    for component, st in walk(path):
        reasons = _weakness(st, trusted_uids)
        if reasons:
            return UntrustedPathError(path, component, st.st_uid, st.st_mode, reasons,
                                      _fix(component, st, trusted_uids), what)
    return None


def file_problem(path: str, st: os.stat_result, what: str = "path",
                 trusted_uids: t.Sequence[int] = TRUSTED_UIDS) -> t.Optional[UntrustedPathError]:
    """The weakness of the file ``path`` itself (``st``, its ``lstat``) as an error (not raised), ``None``
    when only root can change it. Its directories are not looked at (:func:`directory_problem`)."""
    reasons = _weakness(st, trusted_uids)
    if not reasons:
        return None
    return UntrustedPathError(path, path, st.st_uid, st.st_mode, reasons, _fix(path, st, trusted_uids), what)


def directory_problem(path: str, what: str = "path",
                      trusted_uids: t.Sequence[int] = TRUSTED_UIDS) -> t.Optional[UntrustedPathError]:
    """Like :func:`problem`, for the directories on the way to ``path`` only, not ``path`` itself (a
    file about to be replaced: whatever is at ``path`` now, a link included, is not followed)."""
    if not os.path.isabs(path):
        raise ValueError(f"{what} must be an absolute path, got {path!r}")
    for component, st in walk(os.path.dirname(os.path.normpath(path))):
        reasons = _weakness(st, trusted_uids)
        if reasons:
            return UntrustedPathError(path, component, st.st_uid, st.st_mode, reasons,
                                      _fix(component, st, trusted_uids), what)
    return None


def check(path: str, what: str = "path", trusted_uids: t.Sequence[int] = TRUSTED_UIDS) -> None:
    """Raise :class:`UntrustedPathError` unless only root can change ``path`` (see module doc)."""
    err = problem(path, what, trusted_uids)
    if err is not None:
        raise err
