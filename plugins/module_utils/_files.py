# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading a file that may not be there, replacing one whole or not at all, and locking one.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
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
        self.message = (
            f"cannot write {path}: {self.reason}; "
            f"{path} was not changed (the old file stays as it was), free space or fix the cause and run again"
        )

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


def _tmp_prefix(path: str) -> str:
    return f"{TMP_PREFIX}{os.path.basename(path)}-"


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
