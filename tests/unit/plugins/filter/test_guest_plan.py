# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The guest filters (guest_plan, guest_refusals, guest_mount_failures) from values as Ansible hands them over."""
from __future__ import annotations

import yaml

from ansible_collections.virtiofs.libvirt.plugins.filter import guest_mount_failures, guest_plan, guest_refusals

plan_filter = guest_plan.FilterModule().filters()["guest_plan"]
refusals_filter = guest_refusals.FilterModule().filters()["guest_refusals"]
failures_filter = guest_mount_failures.FilterModule().filters()["guest_mount_failures"]


class TaggedStr(str):
    pass


class TaggedInt(int):
    pass


def test_a_tagged_int_tag_is_named_int():
    assert plan_filter([{"tag": TaggedInt(0), "path": TaggedStr("/mnt/zero")}])["errors"] == [
        'virtiofs_guest_mounts[0] (tag 0, path "/mnt/zero"): tag must be a string, got int 0: quote it in YAML (here and in the domain XML)']


def test_plan_defaults_and_arguments():
    assert plan_filter([{"tag": "t", "path": "/m"}])["mounts"][0]["options"] == "defaults,nofail"
    assert plan_filter([{"tag": "t", "path": "/m"}], default_options=TaggedStr("ro"), default_mode="0700")["mounts"][0] == {
        "tag": "t", "path": "/m", "state": "mounted", "options": "ro,nofail", "automount": False, "owner": None, "group": None,
        "mode": "0700"}


def test_refusals_filter():
    shares = [{"tag": TaggedStr("a"), "path": "/a", "state": "mounted", "fstab": [], "foreign": [], "same": []}]
    assert refusals_filter(shares) == []
    assert refusals_filter(shares, [TaggedStr("b")])[0].startswith("tag a not offered to this guest")


def test_failures_filter():
    result = {"failed": True, "results": [{"failed": True, "msg": TaggedStr("x  y"), "_virtiofs_guest_share": {"tag": "t"}}]}
    assert failures_filter(result) == [{"share": {"tag": "t"}, "error": "x y", "not_offered": False}]
    assert failures_filter(result, dmesg_before="", dmesg_after="virtio-fs: tag <t> not found") == [
        {"share": {"tag": "t"}, "error": "x y", "not_offered": True}]


def test_filter_names_and_documentation():
    for module in (guest_plan, guest_refusals, guest_mount_failures):
        name = module.__name__.rsplit(".", 1)[1]
        assert list(module.FilterModule().filters()) == [name]
        assert yaml.safe_load(module.DOCUMENTATION)["name"] == name
        assert yaml.safe_load(module.EXAMPLES) and "_value" in yaml.safe_load(module.RETURN)
