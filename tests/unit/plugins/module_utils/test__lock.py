# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The per-domain lock: one holder per (URI, UUID), a clear error when it is held too long."""

from __future__ import annotations

import os
import uuid

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils._lock import DomainLockError, domain_lock


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
