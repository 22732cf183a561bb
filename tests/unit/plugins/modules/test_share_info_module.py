# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""share_info reports a missing Python library through the shared _requirements helper."""
from __future__ import annotations

import pytest
from ansible.module_utils.basic import missing_required_lib

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _requirements


@pytest.mark.parametrize("library", ["lxml", "libvirt-python"])
def test_missing_library_fails_with_ansibles_message_and_the_traceback(run_module, fail_calls, monkeypatch, library):
    monkeypatch.setitem(_requirements.LIBRARIES, library, (False, f"Traceback: no {library}"))
    res = run_module("share_info", {})
    assert res["failed"] is True
    assert res["msg"] == missing_required_lib(library)
    assert fail_calls == [{"msg": missing_required_lib(library), "exception": f"Traceback: no {library}"}]


def test_unknown_domain_is_refused_with_the_fix(run_module):
    res = run_module("share_info", {"domain": "no-such-domain", "uri": "test:///default"})
    assert res["failed"] is True
    assert "domain 'no-such-domain' not found at 'test:///default'" in res["msg"]
    assert "give the name or UUID of an existing domain" in res["msg"]


def test_unreachable_libvirt_is_refused_with_the_fix(run_module, tmp_path):
    uri = f"test://{tmp_path}/no-such-driver-file.xml"
    res = run_module("share_info", {"uri": uri})
    assert res["failed"] is True
    assert f"libvirt is unreachable at {uri!r}" in res["msg"]
    assert "Check that libvirtd (or virtqemud) is" in res["msg"]
