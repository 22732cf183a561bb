# Copyright: virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: guest_mount_failures
short_description: The failed mounts of the guest role, a tag the guest is not offered told apart
version_added: 0.1.0
author: virtiofs.libvirt contributors
description:
  - Takes the failed result of the mount task of the role
    R(virtiofs.libvirt.guest,ansible_collections.virtiofs.libvirt.guest_role) (C(ansible_failed_result), a looped
    result or a single one) and returns each failed mount with its share, the error on one line and whether the tag is
    not offered to the guest.
  - "A tag is not offered when the kernel lists its tags and this one is not among them, or when the kernel logged
    C(virtio-fs: tag <TAG> not found) while mounting (more often in O(dmesg_after) than in O(dmesg_before))."
options:
  _input:
    description: The failed result.
    type: dict
    required: true
  dmesg_before:
    description: The kernel log before mounting.
    type: str
    default: ""
  dmesg_after:
    description: The kernel log after the failure.
    type: str
    default: ""
  tags:
    description: The tags the kernel lists; V(null) when it does not list them.
    type: list
    elements: str
  share_key:
    description: The loop variable holding the share in each result.
    type: str
    default: _virtiofs_guest_share
"""

EXAMPLES = r"""
- name: Classify the mount errors
  ansible.builtin.set_fact:
    failures: >-
      {{ ansible_failed_result | virtiofs.libvirt.guest_mount_failures(dmesg_before=before.stdout,
         dmesg_after=after.stdout, tags=info.tags, share_key='share') }}
"""

RETURN = r"""
_value:
  description: One entry per failed mount.
  type: list
  elements: dict
  contains:
    share:
      description: The share of the failed mount (C(tag), C(path), C(options) V(?) when the result has none).
      type: dict
    error:
      description: The error, whitespace collapsed.
      type: str
    not_offered:
      description: The tag is not offered to the guest.
      type: bool
"""

from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import mount_failures
from ansible_collections.virtiofs.libvirt.plugins.module_utils._plain import plain


def _guest_mount_failures(failed_result, dmesg_before="", dmesg_after="", tags=None, share_key="_virtiofs_guest_share"):
    return mount_failures(plain(failed_result), plain(dmesg_before), plain(dmesg_after), plain(tags), share_key=str(share_key))


class FilterModule:
    def filters(self):
        return {"guest_mount_failures": _guest_mount_failures}
