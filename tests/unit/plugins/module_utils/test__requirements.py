# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest
from ansible.module_utils.basic import missing_required_lib

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _requirements as R


def test_require_names_the_first_missing_library(monkeypatch):
    R.require("lxml", "libvirt-python")  # both are in the dev venv
    monkeypatch.setitem(R.LIBRARIES, "libvirt-python", (False, "tb"))
    with pytest.raises(R.MissingLibrary) as exc:
        R.require("lxml", "libvirt-python")
    assert str(exc.value) == missing_required_lib("libvirt-python")
    assert (exc.value.library, exc.value.exception) == ("libvirt-python", "tb")
    assert R.failure_details(exc.value) == {"exception": "tb"}
    assert R.failure_details(ValueError("other")) == {}
    with pytest.raises(KeyError):
        R.require("numpy")
