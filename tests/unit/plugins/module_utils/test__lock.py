# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The per-domain lock: one holder per (URI, UUID), a clear error when it is held too long."""

from __future__ import annotations

import os
import tempfile
import uuid

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _lock
from ansible_collections.virtiofs.libvirt.plugins.module_utils._lock import (
    DomainLockError,
    LockTimeout,
    domain_lock,
    lock_directories,
    path_lock,
)


def test_lock_file_is_named_per_domain_and_reused():
    uid = str(uuid.uuid4())
    with domain_lock("test:///default", uid, timeout=1) as path:
        assert os.path.basename(path).startswith("domain-") and path.endswith(".lock")
        assert os.path.exists(path)
    with domain_lock("test:///default", uid, timeout=1) as again:
        assert again == path  # released: the same file is taken again at once
    with domain_lock("qemu:///system", uid, timeout=1) as other_uri:
        assert other_uri != path


def test_held_lock_fails_with_the_lock_path_and_domain():
    uid = str(uuid.uuid4())
    with domain_lock("test:///default", uid, timeout=1) as path:
        with pytest.raises(DomainLockError) as err:
            with domain_lock("test:///default", uid, timeout=0):
                pass  # pragma: no cover - never reached
        assert path in str(err.value) and uid in str(err.value)
        assert "another run holds the lock" in str(err.value)
        # another domain is not blocked by this one
        with domain_lock("test:///default", str(uuid.uuid4()), timeout=0) as free:
            assert free != path


def test_lock_directories_are_run_lock_then_the_temporary_directory():
    assert lock_directories() == ["/run/lock/virtiofs-libvirt", os.path.join(tempfile.gettempdir(), "virtiofs-libvirt")]


@pytest.fixture
def no_lock_directory(tmp_path, monkeypatch):
    """Both places a lock directory can go are regular files (unusable even for root)."""
    run_lock, tmp = tmp_path / "run-lock", tmp_path / "tmp"
    run_lock.write_text("")
    tmp.write_text("")
    monkeypatch.setattr(_lock, "LOCK_BASES", (str(run_lock),))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return run_lock, tmp


def test_no_usable_lock_directory_fails_naming_the_directories_and_the_fix(no_lock_directory):
    run_lock, tmp = no_lock_directory
    target = "/opt/virtiofsd-rust/virtiofsd.sh"
    name = _lock.hashlib.sha256(target.encode()).hexdigest()[:24]
    with pytest.raises(LockTimeout) as err:
        with path_lock(target):
            pytest.fail("ran without the lock")  # pragma: no cover - the point of the test
    assert str(err.value) == (
        f"cannot take the lock for {target}: no lock directory is usable "
        f"({run_lock}/virtiofs-libvirt/path-{name}.lock: Not a directory; "
        f"{tmp}/virtiofs-libvirt/path-{name}.lock: Not a directory); "
        "make one of these directories writable for the user the module runs as (become: true runs it as "
        "root) or point TMPDIR at a writable directory")
    uid = str(uuid.uuid4())
    with pytest.raises(DomainLockError) as err:
        with domain_lock("test:///default", uid):
            pytest.fail("ran without the lock")  # pragma: no cover
    assert str(err.value).startswith(f"cannot take the lock for domain {uid}: no lock directory is usable (")


def test_the_temporary_directory_is_the_fallback(tmp_path, monkeypatch):
    run_lock = tmp_path / "run-lock"
    run_lock.write_text("")
    monkeypatch.setattr(_lock, "LOCK_BASES", (str(run_lock),))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with path_lock("/opt/w.sh") as lock:
        assert os.path.dirname(lock) == str(tmp_path / "virtiofs-libvirt")
