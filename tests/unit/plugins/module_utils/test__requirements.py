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
    assert R.fail_arguments(exc.value) == {"msg": missing_required_lib("libvirt-python"), "exception": "tb"}
    with pytest.raises(KeyError):
        R.require("numpy")


def test_fail_arguments_carry_only_what_the_exception_knows():
    assert R.fail_arguments(ValueError("other")) == {"msg": "other"}
    no_traceback = R.MissingLibrary("lxml", None)
    assert R.fail_arguments(no_traceback) == {"msg": missing_required_lib("lxml")}

    class Found(Exception):
        libvirt_version = "11.3.0"

    assert R.fail_arguments(Found("bad share")) == {"msg": "bad share", "libvirt_version": "11.3.0"}
    Found.libvirt_version = None  # validation before connecting: no version to report
    assert R.fail_arguments(Found("bad share")) == {"msg": "bad share"}


def test_the_table_names_the_two_libraries_the_modules_need():
    assert sorted(R.LIBRARIES) == ["libvirt-python", "lxml"]
    assert all(importable is True and error is None for importable, error in R.LIBRARIES.values())
