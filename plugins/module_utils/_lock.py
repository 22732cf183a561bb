# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Host-wide file locks for concurrent runs on one host: per domain, per written path.

Private module_utils: other collections must not import it.

Plain Python, no Ansible and no libvirt imports.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import tempfile
import time
import typing as t


# ------------------------------------------------------------------------------ locking a path
# Two runs that read, change and write the same file at the same time would otherwise both
# start from the same old file, and the later write would drop the earlier run's change. The
# lock is an ``flock`` on a file in /run/lock/virtiofs-libvirt (or the temporary directory),
# named after a hash of the key: it goes away with the process that holds it, also on SIGKILL.
# Without any usable lock directory the run fails before it changes anything: running unlocked
# would let two runs drop each other's changes without a word.

#: where the lock directory is tried first; the temporary directory (``TMPDIR``) comes after
LOCK_BASES: t.Tuple[str, ...] = ("/run/lock",)
LOCK_SUBDIR = "virtiofs-libvirt"


class LockTimeout(Exception):
    """The lock could not be taken: another run held it longer than the timeout, or no lock directory is usable."""


class DomainLockError(LockTimeout):
    """Another run holds the lock of a domain for longer than the timeout (or no lock directory is usable)."""


def lock_directories() -> t.List[str]:
    """The lock directories in the order they are tried."""
    return [os.path.join(base, LOCK_SUBDIR) for base in LOCK_BASES + (tempfile.gettempdir(),)]


@contextlib.contextmanager
def exclusive_lock(
    kind: str, key: str, what: str, timeout: float = 120.0, error: t.Type[LockTimeout] = LockTimeout
) -> t.Iterator[str]:
    """Hold the host-wide lock ``<kind>-<hash of key>.lock``; ``what`` names it in the ``error`` (:class:`LockTimeout`) message.

    Raises ``error`` without waiting when no lock directory can hold the lock file.
    """
    name = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    tried = []
    for directory in lock_directories():
        path = os.path.join(directory, f"{kind}-{name}.lock")
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            break
        except OSError as exc:
            tried.append(f"{path}: {exc.strerror or exc}")
    else:
        raise error(
            f"cannot take the lock for {what}: no lock directory is usable ({'; '.join(tried)}); "
            "make one of these directories writable for the user the module runs as (become: true runs it as "
            "root) or point TMPDIR at a writable directory"
        )
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise error(f"another run holds the lock {path} for {what} for more than {timeout:.0f} s") from None
                time.sleep(0.05)
        yield path
    finally:
        os.close(fd)


def path_lock(path: str, timeout: float = 120.0) -> t.ContextManager[str]:
    """Serialise the runs that read, change and write ``path`` (a symlink's target counts)."""
    real = os.path.realpath(path)
    return exclusive_lock("path", real, real, timeout)


def domain_lock(uri: str, uuid: str, timeout: float = 120.0) -> t.ContextManager[str]:
    """Serialise read-patch-define-verify of one domain between runs on this host.

    Two runs that patch the same domain at the same time would otherwise both read the same
    definition and the later define would drop the earlier run's share.
    """
    return exclusive_lock("domain", f"{uri}\0{uuid}", f"domain {uuid}", timeout, error=DomainLockError)
