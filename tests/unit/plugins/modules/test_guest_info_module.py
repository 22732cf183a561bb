# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""guest_info in-process on this machine (a Linux host): its own fstab file, the real findmnt."""
from __future__ import annotations

import json
import platform
import subprocess

from ansible.module_utils import basic

from module_harness import load


def test_reports_this_host_and_joins_the_shares(run_module, tmp_path):
    fstab = tmp_path / "fstab"
    fstab.write_text("# comment\ndata /mnt/data virtiofs defaults 0 0\n/dev/sdb1 /srv ext4 defaults 0 2\n")
    res = run_module("guest_info", {"fstab": str(fstab), "shares": [
        {"tag": "data", "path": "/mnt/data", "state": "mounted", "options": "defaults", "automount": False},
        {"tag": "root", "path": "/", "state": "mounted", "options": "defaults", "automount": False}]})
    assert res["changed"] is False
    assert res["system"] == platform.system() and res["kernel"] == platform.release()
    with open("/proc/filesystems", encoding="utf-8") as handle:
        assert res["virtiofs_registered"] is any(line.split()[-1:] == ["virtiofs"] for line in handle)
    assert [e["path"] for e in res["fstab"]] == ["/mnt/data", "/srv"]
    real = json.loads(subprocess.run(["findmnt", "--json", "--list", "--output", "TARGET,SOURCE,FSTYPE,OPTIONS"],
                                     capture_output=True, text=True, check=True).stdout)["filesystems"]
    assert {m["target"] for m in res["mounts"]} == {m["target"] for m in real}
    data, root = res["shares"]
    assert data["fstab_current"] is True and data["same"] == []
    assert root["fstab"] == [] and root["at_path"] and root["same"] == []  # / is not a virtiofs mount here
    assert root["foreign"] == [m for m in res["mounts"] if m["target"] == "/"]


def test_missing_fstab_reads_as_empty(run_module, tmp_path):
    res = run_module("guest_info", {"fstab": str(tmp_path / "none")})
    assert res["fstab"] == [] and res["shares"] == []


def test_findmnt_missing_is_named(run_module, fail_calls, monkeypatch):
    real = basic.AnsibleModule.get_bin_path
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                        lambda self, name, *a, **k: None if name == "findmnt" else real(self, name, *a, **k))
    res = run_module("guest_info", {})
    assert res["failed"] is True
    assert res["msg"] == "findmnt not found on this guest: install util-linux (it provides findmnt)"
    assert load("guest_info").FINDMNT_ARGV[0] == "findmnt"
