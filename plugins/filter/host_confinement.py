# Copyright: virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: host_confinement
short_description: Which confinement the host role applies, from its plan and the host's facts
version_added: 0.1.0
author: virtiofs.libvirt contributors
description:
  - Takes the gathered facts of the host (C(ansible_facts), with C(apparmor) and C(selinux)) and the plan of
    P(virtiofs.libvirt.host_plan#filter), and returns what the role
    R(virtiofs.libvirt.host,ansible_collections.virtiofs.libvirt.host_role) does about AppArmor and SELinux.
options:
  _input:
    description: The host's facts.
    type: dict
    required: true
  plan:
    description: The plan of P(virtiofs.libvirt.host_plan#filter).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Decide which confinement applies
  ansible.builtin.set_fact:
    confinement: "{{ ansible_facts | virtiofs.libvirt.host_confinement(plan) }}"
"""

RETURN = r"""
_value:
  description: The decisions.
  type: dict
  contains:
    apparmor:
      description: Write the AppArmor rules (V(always), or V(auto) with AppArmor enabled in the kernel).
      type: bool
    apparmor_kernel:
      description: AppArmor is enabled in the kernel (the changed profiles are reloaded).
      type: bool
    selinux:
      description: SELinux is enabled (enforcing or permissive) and the mode is V(auto).
      type: bool
    selinux_label:
      description: Label the daemon and the wrappers (C(selinux), and the daemon is installed).
      type: bool
"""

from ansible_collections.virtiofs.libvirt.plugins.module_utils._host_plan import confinement
from ansible_collections.virtiofs.libvirt.plugins.module_utils._plain import plain


def _host_confinement(facts, plan):
    return confinement(plain(plan), plain(facts))


class FilterModule:
    def filters(self):
        return {"host_confinement": _host_confinement}
