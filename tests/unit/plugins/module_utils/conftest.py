# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the module_utils tests: ``lab``, the installer's test world (install_world.py)."""

from __future__ import annotations

import pytest

from install_world import Lab


@pytest.fixture
def lab(tmp_path):
    return Lab(tmp_path)
