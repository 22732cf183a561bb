# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading a file that may not be there, and replacing one whole or not at all.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports.
"""

from __future__ import annotations

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
    process defaults. Raises :class:`OSError` (for example ``ENOSPC``) with ``path`` left as it
    was.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, owner[0], owner[1])
        (move or os.replace)(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    if mode is not None:
        os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner[0], owner[1])
    _fsync_dir(directory)


def is_leftover(name: str) -> bool:
    """True for a temporary file :func:`write_atomic` left behind (a process killed mid-write)."""
    return name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX)
