# Copyright: virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: guest_refusals
short_description: What the guest role refuses on a guest before the first change
version_added: 0.1.0
author: virtiofs.libvirt contributors
description:
  - Takes the C(shares) of M(virtiofs.libvirt.guest_info) (each share joined with its fstab lines and the mounts on its
    path) and the tags the guest kernel lists, and returns one sentence per refusal of the role
    R(virtiofs.libvirt.guest,ansible_collections.virtiofs.libvirt.guest_role).
  - Refused are a managed path with an fstab line or a mount of another file system type, and a tag to mount that the
    kernel's list of tags lacks.
options:
  _input:
    description: The C(shares) of M(virtiofs.libvirt.guest_info).
    type: list
    elements: dict
    required: true
  tags:
    description: The C(tags) of M(virtiofs.libvirt.guest_info); V(null) when the kernel does not list them.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Refuse before any change
  ansible.builtin.fail:
    msg: "{{ problems | join(' ') }} Nothing was changed."
  vars:
    problems: "{{ info.shares | virtiofs.libvirt.guest_refusals(info.tags) }}"
  when: problems | length > 0
"""

RETURN = r"""
_value:
  description: One sentence per refusal; empty when there is none.
  type: list
  elements: str
"""

from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import refusals
from ansible_collections.virtiofs.libvirt.plugins.module_utils._plain import plain


def _guest_refusals(shares, tags=None):
    return refusals(plain(shares), plain(tags))


class FilterModule:
    def filters(self):
        return {"guest_refusals": _guest_refusals}
