# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import read_bytes


def test_read_bytes(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"#!/bin/sh\nexec x\n")
    assert read_bytes(str(path)) == b"#!/bin/sh\nexec x\n"
    assert read_bytes(str(path), 4) == b"#!/b"
    assert read_bytes(str(tmp_path / "missing")) is None
    with pytest.raises(IsADirectoryError):
        read_bytes(str(tmp_path))
    assert read_bytes(str(tmp_path), best_effort=True) is None
