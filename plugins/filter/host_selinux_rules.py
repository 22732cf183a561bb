# Copyright: virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: host_selinux_rules
short_description: The SELinux file context rules of the host role
version_added: 0.1.0
author: virtiofs.libvirt contributors
description:
  - Takes the plan of P(virtiofs.libvirt.host_plan#filter) and returns the file context rules that the role
    R(virtiofs.libvirt.host,ansible_collections.virtiofs.libvirt.host_role) writes.
  - The daemon it installed gets O(daemon_type), or the type of O(reference_context), or C(bin_t); every present
    wrapper gets O(wrapper_type).
  - Each rule names the resolved path (O(daemon_realpath), O(wrapper_realpaths)), because file context rules match
    the real path; a rule for a path through a symbolic link labels nothing.
options:
  _input:
    description: The plan of P(virtiofs.libvirt.host_plan#filter).
    type: dict
    required: true
  daemon_path:
    description: The path of the daemon the role installed; no rule for it when empty or outside the plan's install directory.
    type: str
  daemon_type:
    description: The SELinux type for the daemon (the role's C(virtiofs_host_selinux_daemon_type)); empty to take it from O(reference_context).
    type: str
  reference_context:
    description: The SELinux context (V(user:role:type:level)) of the distribution's virtiofsd.
    type: str
  wrapper_type:
    description: The SELinux type for the wrappers (the role's C(virtiofs_host_selinux_wrapper_type)).
    type: str
    default: bin_t
  daemon_realpath:
    description: O(daemon_path) with symbolic links resolved (the C(realpath) of M(virtiofs.libvirt.virtiofsd)); the rule names it.
    type: str
  wrapper_realpaths:
    description:
      - Wrapper path -> that path with symbolic links resolved (the C(realpath) of M(virtiofs.libvirt.virtiofsd_wrapper));
        the rules name these. A wrapper missing here keeps its path.
    type: dict
"""

EXAMPLES = r"""
- name: Decide the labels
  ansible.builtin.set_fact:
    rules: "{{ plan | virtiofs.libvirt.host_selinux_rules('/opt/virtiofsd-rust/virtiofsd', '', 'system_u:object_r:virtd_exec_t:s0', 'bin_t') }}"
"""

RETURN = r"""
_value:
  description: The rules, each with C(path) and C(type); the daemon's first, then the wrappers in the plan's order.
  type: list
  elements: dict
"""

from ansible_collections.virtiofs.libvirt.plugins.module_utils._host_plan import selinux_rules
from ansible_collections.virtiofs.libvirt.plugins.module_utils._plain import plain


def _host_selinux_rules(plan, daemon_path=None, daemon_type=None, reference_context=None, wrapper_type="bin_t",
                        daemon_realpath=None, wrapper_realpaths=None):
    return selinux_rules(plain(plan), plain(daemon_path), plain(daemon_type), plain(reference_context), plain(wrapper_type),
                         plain(daemon_realpath), plain(wrapper_realpaths))


class FilterModule:
    def filters(self):
        return {"host_selinux_rules": _host_selinux_rules}
