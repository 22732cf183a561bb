# Copyright: virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: guest_mounts_from_shares
short_description: A guest's mounts from its hypervisor's share definitions
version_added: 0.1.0
author: virtiofs.libvirt contributors
description:
  - Takes a hypervisor's C(virtiofs_host_shares) (the input of the role
    R(virtiofs.libvirt.host,ansible_collections.virtiofs.libvirt.host_role)) and a domain name, and returns the
    C(virtiofs_guest_mounts) of the guest that runs as that domain, as the playbook C(virtiofs.libvirt.guest) uses them.
  - Every entry of that domain with a C(tag) and without C(mount=false) becomes a mount at C(mount_path) (default
    C(/mnt/<tag>)) with C(mount_state) (default V(mounted), V(absent) for an absent share) and the entry's
    C(mount_options), C(mount_owner), C(mount_group), C(mount_mode), C(mount_automount), C(mount_nofail) and
    C(mount_selinux_context) without their C(mount_) prefix.
options:
  _input:
    description: The hypervisor's C(virtiofs_host_shares).
    type: list
    elements: raw
    required: true
  domain:
    description: The libvirt domain name of the guest.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The mounts of this guest
  ansible.builtin.set_fact:
    mounts: "{{ hostvars[virtiofs_hypervisor].virtiofs_host_shares | virtiofs.libvirt.guest_mounts_from_shares(virtiofs_domain) }}"
"""

RETURN = r"""
_value:
  description: The mounts, in the order of the share entries; each has C(tag), C(path) and C(state), and the optional keys that were set.
  type: list
  elements: dict
"""

from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import mounts_from_host_shares
from ansible_collections.virtiofs.libvirt.plugins.module_utils._plain import plain


def _guest_mounts_from_shares(shares, domain):
    return mounts_from_host_shares(plain(shares), plain(domain))


class FilterModule:
    def filters(self):
        return {"guest_mounts_from_shares": _guest_mounts_from_shares}
