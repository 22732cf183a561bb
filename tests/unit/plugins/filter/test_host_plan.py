# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host_plan and host_confinement filters: the plan of _host_plan from values as Ansible hands them over."""
from __future__ import annotations

import yaml

from ansible_collections.virtiofs.libvirt.plugins.filter import host_confinement, host_plan

host_plan_filter = host_plan.FilterModule().filters()["host_plan"]
host_confinement_filter = host_confinement.FilterModule().filters()["host_confinement"]


class TaggedStr(str):
    pass


class TaggedInt(int):
    pass


def test_filter_names():
    assert list(host_plan.FilterModule().filters()) == ["host_plan"]
    assert list(host_confinement.FilterModule().filters()) == ["host_confinement"]


def test_plan_from_tagged_values():
    result = host_plan_filter({
        "virtiofs_host_wrappers": {TaggedStr("default"): {"path": TaggedStr("/w.sh")}},
        "virtiofs_host_shares": [{"domain": TaggedStr("a"), "tag": TaggedStr("t"), "source": TaggedStr("/s"), "mount": True},
                                 {"domain": "a", "tag": TaggedInt(12), "source": "/s2", "queue_size": TaggedInt(0)}],
    }, role_share_keys=(TaggedStr("domain"), "wrapper", "mount"))
    assert result["failure"] == ["virtiofs.libvirt.host: bad virtiofs_host_shares:",
                                 "virtiofs_host_shares[1] (domain \"a\", tag \"12\"): share '12': queue_size must be an integer >= 1, got 0"]
    assert result["shares"][0]["module"] == {"tag": "t", "source": "/s", "binary_path": "/w.sh"}
    assert result["shares"][0]["module"]["tag"].__class__ is str
    assert result["wrapper_paths"] == ["/w.sh"]


def test_confinement_filter():
    plan = host_plan_filter({"virtiofs_host_apparmor": TaggedStr("auto")})
    assert host_confinement_filter({"apparmor": {"status": TaggedStr("enabled")}}, plan) == {
        "apparmor": True, "apparmor_kernel": True, "selinux": False, "selinux_label": False}


def test_documentation_is_yaml():
    for module in (host_plan, host_confinement):
        doc = yaml.safe_load(module.DOCUMENTATION)
        assert doc["name"] == module.__name__.rsplit(".", 1)[1]
        assert yaml.safe_load(module.EXAMPLES) and "_value" in yaml.safe_load(module.RETURN)
