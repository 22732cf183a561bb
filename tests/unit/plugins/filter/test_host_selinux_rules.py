# SPDX-License-Identifier: GPL-3.0-or-later
"""The filter virtiofs.libvirt.host_selinux_rules: Ansible's tagged values in, plain rules out."""
from __future__ import annotations

from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.virtiofs.libvirt.plugins.filter.host_selinux_rules import FilterModule
from ansible_collections.virtiofs.libvirt.plugins.module_utils._host_plan import host_plan


def test_filter_is_registered_and_unwraps_ansible_values():
    flt = FilterModule().filters()["host_selinux_rules"]
    plan = host_plan({"virtiofs_host_wrappers": {"a": {"path": "/opt/virtiofsd-rust/a.sh"}}})
    rules = flt(wrap_var(plan), daemon_path=wrap_var("/opt/virtiofsd-rust/virtiofsd"), daemon_type=wrap_var(""),
                reference_context=wrap_var("u:r:virtd_exec_t:s0"), wrapper_type=wrap_var("bin_t"))
    assert rules == [{"path": "/opt/virtiofsd-rust/virtiofsd", "type": "virtd_exec_t"},
                     {"path": "/opt/virtiofsd-rust/a.sh", "type": "bin_t"}]
    assert all(v.__class__ is str for rule in rules for v in rule.values())
