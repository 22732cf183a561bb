# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading a file that may not be there, replacing one whole or not at all, and locking one.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import stat
import tempfile
import time
import typing as t


def read_bytes(path: str, size: int = -1, best_effort: bool = False) -> t.Optional[bytes]:
    """The bytes of ``path`` (at most ``size`` of them), ``None`` when it does not exist.

    Other ``OSError`` s are raised, unless ``best_effort``: then they give ``None`` too (for
    files that may vanish or be unreadable while they are read, such as pid files and
    ``/proc/<pid>/...`` of a process that just ended).
    """
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except FileNotFoundError:
        return None
    except OSError:
        if best_effort:
            return None
        raise


# ------------------------------------------------------------------ replacing a file atomically
# The data goes to a temporary file in the destination's directory (same file system), is
# flushed to disk, gets its mode and owner, and is then moved over the destination with one
# ``rename``. Modules pass ``module.atomic_move`` as ``move`` (it keeps an existing file's
# attributes and SELinux context); tests and plain Python use :func:`os.replace`. A reader, or
# a process killed at any point, sees the old file or the new one, never a partial one; the
# temporary file is removed on every failure, and its name starts with a dot and ends in
# ``.tmp`` so that nothing that lists the directory mistakes it for a real file.


MoveCallable = t.Callable[[str, str], t.Any]
TMP_PREFIX = ".virtiofs-libvirt-"
TMP_SUFFIX = ".tmp"


class WriteError(OSError):
    """Writing ``path`` failed (for example the disk is full); ``path`` is as it was before."""

    def __init__(self, path: str, exc: OSError) -> None:
        super().__init__(exc.errno, exc.strerror)
        self.path = path
        cause = exc.strerror or str(exc)  # the system's words, said once
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        #: the cause alone, for callers that word the file's state themselves
        self.reason = f"the disk is full ({cause})" if full else cause
        kept = (f"{path} was not changed (the old file stays as it was)" if os.path.lexists(path)
                else f"{path} was not changed (no file was created there)")
        fix = ("the file name is too long for the file system: choose a shorter path and run again"
               if exc.errno == errno.ENAMETOOLONG else "free space or fix the cause and run again")
        self.message = f"cannot write {path}: {self.reason}; {kept}, {fix}"

    def __str__(self) -> str:
        return self.message


class AttributesError(OSError):
    """A ``chmod`` or ``chown`` failed; :attr:`message` names the file, the operation, the system's
    words, the state the file is left in (``state``) and the fix. ``changed`` tells whether the
    destination was changed before the failure (``state`` says how)."""

    def __init__(self, path: str, operation: str, exc: OSError, state: str, changed: bool) -> None:
        super().__init__(exc.errno, exc.strerror)
        self.path = path
        self.operation = operation
        self.changed = changed
        self.reason = exc.strerror or str(exc)
        self.message = (
            f"cannot {operation}: {self.reason}; {state}. Fix: let root change the mode and owner of files there "
            f"(the file not immutable: lsattr, chattr -i; the file system not read-only and not an NFS export "
            f"with root_squash), then run again"
        )

    def __str__(self) -> str:
        return self.message


def describe_attrs(path: str) -> str:
    """``mode 0700, owner 0, group 0`` of ``path`` (not following a link), or why it cannot be read."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"attributes unreadable ({exc.strerror or exc})"
    return f"mode {st.st_mode & 0o7777:04o}, owner {st.st_uid}, group {st.st_gid}"


def set_attributes(
    path: str,
    mode: t.Optional[int],
    owner: t.Optional[t.Tuple[int, int]],
    state: t.Callable[[], str],
    changed: bool,
    what: t.Optional[str] = None,
) -> None:
    """``chmod`` then ``chown`` ``path``; :class:`AttributesError` when one fails.

    ``state()`` describes ``path`` after the failure (called then, so that it can read the file);
    ``what`` names the file in the message (default ``path``); ``changed`` is passed on.
    """
    steps: t.List[t.Tuple[str, t.Callable[[], None]]] = []
    if mode is not None:
        steps.append((f"chmod {mode:04o}", lambda: os.chmod(path, mode)))
    if owner is not None:
        steps.append((f"chown {owner[0]}:{owner[1]}", lambda: os.chown(path, owner[0], owner[1])))
    for operation, step in steps:
        try:
            step()
        except OSError as exc:
            raise AttributesError(path, f"{operation} {what or path}", exc, state(), changed) from None


#: longest file name part of ``path`` kept as it is in the temporary name; a longer one is replaced by a hash, so
#: that ``.virtiofs-libvirt-NAME-XXXXXXXX.tmp`` always fits in the 255 bytes of a file name
_TMP_NAME_MAX = 200


def _tmp_prefix(path: str) -> str:
    name = os.path.basename(path)
    if len(os.fsencode(name)) > _TMP_NAME_MAX:
        name = "sha256-" + hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
    return f"{TMP_PREFIX}{name}-"


def remove_leftovers(path: str) -> t.List[str]:
    """Remove the temporary files of earlier writes of ``path`` that were killed mid-write.

    Only safe while holding :func:`path_lock` for ``path`` (no other run is writing it).
    Returns the removed paths.
    """
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _tmp_prefix(path)
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if name.startswith(prefix) and name.endswith(TMP_SUFFIX):
            leftover = os.path.join(directory, name)
            try:
                os.unlink(leftover)
                removed.append(leftover)
            except OSError:
                pass
    return removed


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_temporary(
    path: str,
    data: t.Union[bytes, str],
    mode: t.Optional[int] = None,
    owner: t.Optional[t.Tuple[int, int]] = None,
) -> str:
    """Write ``data`` to a new temporary file next to ``path`` and return the temporary file's path.

    The first half of :func:`write_atomic`, for callers that check the new file before it replaces
    ``path`` (:func:`install_temporary`, or :func:`remove_file` when the check fails): the data is
    flushed to disk and the file has ``mode`` and ``owner``. Its name is the one :func:`remove_leftovers`
    removes, so a run killed before the install leaves nothing the next run keeps. ``path`` itself is
    not touched. Raises :class:`WriteError`; no temporary file is left then.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=TMP_SUFFIX, dir=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        set_attributes(tmp, mode, owner, changed=False, what=f"the temporary file {tmp} (the new {path})",
                       state=lambda: f"{path} was not changed (the old file stays as it was; the temporary file is removed)")
    except OSError as exc:
        if tmp and os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(exc, AttributesError):
            raise
        raise WriteError(path, exc) from None
    return tmp


def install_temporary(
    tmp: str,
    path: str,
    move: t.Optional[MoveCallable] = None,
    mode: t.Optional[int] = None,
    owner: t.Optional[t.Tuple[int, int]] = None,
) -> None:
    """Move ``tmp`` (from :func:`write_temporary`) over ``path`` with one ``rename``; the second half of :func:`write_atomic`.

    When the move fails ``tmp`` is removed and :class:`WriteError` is raised (``path`` is as it was).
    When setting ``mode`` or ``owner`` after the move fails, :class:`AttributesError` is raised with
    ``changed`` true: ``path`` already holds the new data, with the attributes its message names.
    """
    try:
        (move or os.replace)(tmp, path)
    except OSError as exc:
        raise WriteError(path, exc) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    set_attributes(path, mode, owner, changed=True, state=lambda: (
        f"{path} already holds the new content (it was moved into place), with {describe_attrs(path)}"))
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def write_atomic(
    path: str,
    data: t.Union[bytes, str],
    move: t.Optional[MoveCallable] = None,
    mode: t.Optional[int] = None,
    owner: t.Optional[t.Tuple[int, int]] = None,
) -> None:
    """Replace ``path`` with ``data`` atomically.

    ``mode`` and ``owner`` (``(uid, gid)``) are set on the temporary file before the move and
    again on the result (``atomic_move`` copies an existing destination's attributes); when
    they are ``None`` an existing file keeps its own (``atomic_move``) and a new file gets the
    process defaults. Raises :class:`WriteError` (an :class:`OSError`, for example ``ENOSPC``)
    naming ``path`` and saying that it was left as it was, or :class:`AttributesError` when a
    ``chmod``/``chown`` fails (its ``changed`` and message say whether ``path`` was replaced).
    """
    install_temporary(write_temporary(path, data, mode, owner), path, move, mode, owner)


class BackupError(OSError):
    """Making the backup copy of a file failed; :attr:`message` names the operation, the file, the system's
    words, the state left (no partial backup is kept) and the fix."""

    def __init__(self, path: str, backup: str, operation: str, exc: OSError) -> None:
        super().__init__(exc.errno, exc.strerror)
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        reason = exc.strerror or str(exc)
        fix = ("the backup's name is too long for the file system: choose a shorter path for the wrapper, or set "
               "backup: false" if exc.errno == errno.ENAMETOOLONG else
               "free space in its directory or make it writable by root (not a read-only file system or bind "
               "mount), or set backup: false")
        self.message = (
            f"cannot back up {path} ({operation} {backup}): {reason} [{code}]; {path} was not changed and no "
            f"backup file is left. Fix: {fix}, then run again"
        )

    def __str__(self) -> str:
        return self.message


#: a backup's name is ``PATH.PID.YYYY-MM-DD@HH:MM:SS.RANDOM~`` (Ansible's ``backup_local`` pattern with a random part)
def backup_name(path: str) -> str:
    stamp = time.strftime("%Y-%m-%d@%H:%M:%S", time.localtime())
    return f"{path}.{os.getpid()}.{stamp}.{secrets.token_hex(4)}~"


def backup_file(path: str) -> str:
    """Copy the regular file ``path`` to a new file next to it (:func:`backup_name`) and return its path.

    Unlike Ansible's ``backup_local`` the copy is created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` (mode 0600 until it
    is complete): a name planted in a directory others can write (a symbolic link, a file) is never followed or
    reused. ``path`` is opened with ``O_NOFOLLOW``. The data is flushed to disk, then the copy gets the mode
    (permission bits, not set-id) and times of ``path``; it stays owned by the user running the module. Raises
    :class:`BackupError`; no partial backup is left then.
    """
    dest = backup_name(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    operation = "open"
    created = False
    try:
        src = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            st = os.fstat(src)
            operation = "create"
            fd = os.open(dest, flags, 0o600)
            created = True
            try:
                operation = "write"
                while True:
                    chunk = os.read(src, 1 << 20)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                operation = "fsync"
                os.fsync(fd)
                operation = "chmod"
                os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o777)
                operation = "set the times of"
                os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(fd)
        finally:
            os.close(src)
    except OSError as exc:
        if created:
            try:
                os.unlink(dest)
            except OSError:
                pass
        raise BackupError(path, dest, operation, exc) from None
    _fsync_dir(os.path.dirname(os.path.abspath(dest)))
    return dest


def is_leftover(name: str) -> bool:
    """True for a temporary file :func:`write_atomic` left behind (a process killed mid-write)."""
    return name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX)


def remove_file(path: str) -> bool:
    """Unlink ``path``; ``False`` when it did not exist."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def render_json(data: t.Any) -> str:
    """The JSON text of the files this collection writes (sorted keys, indent 2, final newline)."""
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
