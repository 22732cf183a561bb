# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host_plan and host_confinement filters: the plan of _host_plan from values as Ansible hands them over."""
from __future__ import annotations

import yaml

from ansible_collections.virtiofs.libvirt.plugins.filter import host_confinement, host_plan
from ansible_collections.virtiofs.libvirt.plugins.module_utils import _host_plan as hp

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
                                 "virtiofs_host_shares[1] (domain \"a\", tag \"12\"): tag must be a string, got int 12: quote it in YAML"]
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


def _profile_failure(options):
    return host_plan_filter({"virtiofs_host_wrappers": {"default": {"path": "/w.sh", "options": options}}})["failure"]


def test_profile_options_typed_as_this_core_types_the_module_options():
    # The module's own argument spec, run through this ansible-core, is the reference.
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd_options import argument_spec

    given = {"thread_pool_size": 4.0, "rlimit_nofile": "4096", "xattr": "yes", "readonly": 0, "uid_map": "a,b",
             "seccomp": "kill"}
    module_view = ArgumentSpecValidator(argument_spec()).validate(dict(given))
    assert module_view.error_messages == []
    typed = hp.module_typed_options(given)
    assert typed == {k: module_view.validated_parameters[k] for k in given}
    assert typed["thread_pool_size"] == 4 and isinstance(typed["thread_pool_size"], int)
    assert not isinstance(typed["thread_pool_size"], (bool, float))
    assert typed["xattr"] is True and typed["readonly"] is False and typed["uid_map"] == ["a", "b"]
    # what the module accepts, the role accepts
    assert _profile_failure({"thread_pool_size": 4.0, "rlimit_nofile": "4096", "xattr": "yes"}) is None


def test_profile_options_the_module_would_refuse_are_refused_with_the_option_named():
    failure = _profile_failure({"thread_pool_size": 4.5})
    assert failure[0] == "virtiofs.libvirt.host: bad wrapper profiles:"
    assert len(failure) == 2 and "thread_pool_size" in failure[1] and "4.5" in failure[1]
    failure = _profile_failure({"inode_file_handles": "sometimes"})
    assert len(failure) == 2 and "inode_file_handles" in failure[1] and "sometimes" in failure[1]
    # an unknown key stays as given, so the plan names it with a close match
    failure = _profile_failure({"thread_pool_sise": 4})
    assert len(failure) == 2 and "thread_pool_sise" in failure[1] and "thread_pool_size" in failure[1]
