# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The share module's own layer: argument spec from the module_utils constants, check mode,
idempotency and the one failure path (xml_file mode, no libvirt needed)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ansible.module_utils.basic import missing_required_lib

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _requirements
from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import (
    CACHE_MODES,
    MEMORY_BACKING_MODES,
    SANDBOX_MODES,
    STATES,
)
from module_harness import argument_spec, load

share = load("share")

FIXTURE = Path(__file__).resolve().parents[1] / "module_utils" / "fixtures" / "libvirt-9.0-qemu-q35-plain.xml"


def test_choices_come_from_the_patcher(monkeypatch):
    spec = argument_spec("share", monkeypatch)["argument_spec"]
    assert spec["cache"]["choices"] == list(CACHE_MODES) == ["none", "always"]
    assert spec["sandbox"]["choices"] == list(SANDBOX_MODES)
    assert spec["state"]["choices"] == list(STATES)
    assert spec["memory_backing"]["choices"] == list(MEMORY_BACKING_MODES)
    assert spec["shares"]["options"]["state"]["choices"] == list(STATES)
    assert spec["shares"]["options"]["cache"]["choices"] == list(CACHE_MODES)


def test_xml_file_check_mode_then_apply_then_idempotent(run_module, tmp_path):
    xml = tmp_path / "domain.xml"
    shutil.copy(FIXTURE, xml)
    original = xml.read_bytes()
    args = {"xml_file": str(xml), "tag": "data", "source": str(tmp_path), "cache": "always"}

    res = run_module("share", dict(args, _ansible_check_mode=True))
    assert res["changed"] is True
    assert xml.read_bytes() == original
    assert [s["tag"] for s in res["shares"]] == ["data"]

    res = run_module("share", args)
    assert res["changed"] is True
    text = xml.read_text()
    assert "<target dir='data'/>" in text or '<target dir="data"/>' in text
    assert "virtiofs" in text and "memfd" in text

    res = run_module("share", args)
    assert res["changed"] is False, res["actions"]
    assert res["actions"] == []


def test_bad_share_fails_before_anything_is_read(run_module, tmp_path):
    res = run_module("share", {"xml_file": str(tmp_path / "missing.xml"), "tag": "my share", "source": "/srv"})
    assert res["failed"] is True
    assert res["msg"] == ("tag 'my share' contains ' ': a tag may only contain A-Z a-z 0-9 . _ : @ + = / - "
                          "(the guest writes it into /etc/fstab and mount options); rename the share")
    assert "changed" not in res or res["changed"] is False


def test_missing_lxml_is_reported_with_the_import_error(run_module, fail_calls, monkeypatch, tmp_path):
    monkeypatch.setitem(_requirements.LIBRARIES, "lxml", (False, "Traceback: No module named 'lxml'"))
    res = run_module("share", {"xml_file": str(tmp_path / "d.xml"), "tag": "data", "source": str(tmp_path)})
    assert res["failed"] is True
    assert res["msg"] == missing_required_lib("lxml")
    assert fail_calls == [{"msg": missing_required_lib("lxml"), "exception": "Traceback: No module named 'lxml'"}]


@pytest.mark.parametrize("args", [{"domain": "web01", "tag": "data", "source": "/srv"},
                                  {"domains": [{"name": "web01", "shares": [{"tag": "data", "source": "/srv"}]}]}])
def test_missing_libvirt_python_is_reported_before_connecting(run_module, fail_calls, monkeypatch, args):
    monkeypatch.setitem(_requirements.LIBRARIES, "libvirt-python", (False, "Traceback: No module named 'libvirt'"))
    monkeypatch.setattr(share, "Connection", _no_connection)
    res = run_module("share", args)
    assert res["failed"] is True
    assert res["msg"] == missing_required_lib("libvirt-python")
    assert fail_calls == [{"msg": missing_required_lib("libvirt-python"),
                           "exception": "Traceback: No module named 'libvirt'"}]


def test_xml_file_does_not_need_libvirt_python(run_module, monkeypatch, tmp_path):
    monkeypatch.setitem(_requirements.LIBRARIES, "libvirt-python", (False, "Traceback: No module named 'libvirt'"))
    xml = tmp_path / "domain.xml"
    shutil.copy(FIXTURE, xml)
    res = run_module("share", {"xml_file": str(xml), "tag": "data", "source": str(tmp_path)})
    assert "failed" not in res and res["changed"] is True


def _no_connection(uri):
    raise AssertionError(f"connected to {uri} although libvirt-python is missing")


def test_domains_is_exclusive_with_the_single_domain_forms(run_module):
    res = run_module("share", {"domains": [{"name": "a", "shares": [{"tag": "t", "source": "/srv"}]}],
                               "domain": "a"})
    assert res["failed"] is True and "mutually exclusive" in res["msg"] and "domains" in res["msg"]
    res = run_module("share", {"domains": [{"name": "a", "shares": [{"tag": "t", "source": "/srv"}]}],
                               "cache": "always"})
    assert res["failed"] is True
    assert res["msg"] == ("the single-share options cache cannot be combined with domains: put them into the "
                          "shares of the entries of domains")


def test_domains_entries_use_the_share_options(monkeypatch):
    spec = argument_spec("share", monkeypatch)["argument_spec"]
    entry = spec["domains"]["options"]
    assert entry["name"] == {"type": "str", "required": True, "aliases": ["domain"]}
    assert entry["shares"]["options"] == spec["shares"]["options"]


def test_unreadable_xml_file_is_named(run_module, tmp_path):
    missing = tmp_path / "missing.xml"
    res = run_module("share", {"xml_file": str(missing), "tag": "data", "source": str(tmp_path)})
    assert res["failed"] is True
    assert f"cannot read xml_file {str(missing)!r}: No such file or directory" in res["msg"]
    assert not missing.exists()
