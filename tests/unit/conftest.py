# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests never write the host's own records: the wrapper's mode-repair records go to a temporary directory."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def repair_dir(monkeypatch, tmp_path_factory):
    """``_restart.REPAIR_DIR`` of this test (a fresh directory, not yet created; not under ``tmp_path``)."""
    from ansible_collections.virtiofs.libvirt.plugins.module_utils import _restart

    path = tmp_path_factory.mktemp("repairs") / "attribute-repairs"
    monkeypatch.setattr(_restart, "REPAIR_DIR", str(path))
    return path
