# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A per-domain file lock for concurrent runs on one host.

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


class DomainLockError(Exception):
    """Another run holds the lock of a domain for longer than the timeout."""


@contextlib.contextmanager
def domain_lock(uri: str, uuid: str, timeout: float = 120.0) -> t.Iterator[str]:
    """Serialise read-patch-define-verify of one domain between runs on this host.

    Two runs that patch the same domain at the same time would otherwise both read the same
    definition and the later define would drop the earlier run's share.
    """
    key = hashlib.sha256(f"{uri}\0{uuid}".encode("utf-8")).hexdigest()[:24]
    for base in ("/run/lock", tempfile.gettempdir()):
        directory = os.path.join(base, "virtiofs-libvirt")
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            path = os.path.join(directory, f"domain-{key}.lock")
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            break
        except OSError:
            continue
    else:  # pragma: no cover - no writable lock directory at all
        yield ""
        return
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise DomainLockError(
                        f"another run holds the lock {path} for domain {uuid} for more than {timeout:.0f} s"
                    ) from None
                time.sleep(0.05)
        yield path
    finally:
        os.close(fd)
