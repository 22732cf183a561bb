# Copyright: virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: guest_plan
short_description: The mounts of the guest role, checked and normalised
version_added: 0.1.0
author: virtiofs.libvirt contributors
description:
  - Takes the C(virtiofs_guest_mounts) of the role R(virtiofs.libvirt.guest,ansible_collections.virtiofs.libvirt.guest_role)
    and returns every problem (each naming the entry and the fix) and the mounts the role manages, with the fstab options it
    writes.
  - Tags get the check of P(virtiofs.libvirt.tag_error#filter). Choices the role's argument spec declares are not
    checked again.
options:
  _input:
    description: The entries of C(virtiofs_guest_mounts).
    type: list
    elements: raw
    required: true
  default_options:
    description: Mount options of entries without C(options) (the role's C(virtiofs_guest_default_options)).
    type: str
    default: defaults,nofail
  default_mode:
    description: Mode of the mount points of entries without C(mode) (the role's C(virtiofs_guest_default_mode)).
    type: raw
    default: "0755"
"""

EXAMPLES = r"""
- name: Check and normalise the mounts
  ansible.builtin.set_fact:
    plan: "{{ [{'tag': 'data', 'path': '/srv/data'}] | virtiofs.libvirt.guest_plan }}"

- name: Fail on bad input
  ansible.builtin.fail:
    msg: "{{ plan.failure }}"
  when: plan.failure is not none
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    errors:
      description: One line per problem.
      type: list
      elements: str
    failure:
      description: V(null) when the input is fine; otherwise the message the role fails with (a heading and the problems).
      type: list
      elements: str
    mounts:
      description:
        - The entries, normalised, C(tag), C(path), C(state), C(options) (the fstab field, with C(nofail),
          C(x-systemd.automount) and C(context=) as asked), C(automount), C(owner), C(group) and C(mode).
      type: list
      elements: dict
"""

from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import guest_plan
from ansible_collections.virtiofs.libvirt.plugins.module_utils._plain import plain


def _guest_plan(mounts, default_options="defaults,nofail", default_mode="0755"):
    return guest_plan(plain(mounts), plain(default_options), plain(default_mode))


class FilterModule:
    def filters(self):
        return {"guest_plan": _guest_plan}
