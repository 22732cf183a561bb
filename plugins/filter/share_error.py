# Copyright: virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: share_error
short_description: Why a share definition would be refused by the share module
version_added: 0.1.0
author: virtiofs.libvirt contributors
description:
  - Runs the checks that M(virtiofs.libvirt.share) makes on one entry of its O(virtiofs.libvirt.share#module:shares)
    option before it reads any domain (tag, source, binary_path in normal form, cache, sandbox, integer limits, idmap
    ranges) and returns the first problem, or an empty string.
  - The role R(virtiofs.libvirt.host,ansible_collections.virtiofs.libvirt.host_role) uses it so that bad share
    values fail before virtiofsd, the wrappers or any domain are changed.
  - It does not look at the host (whether the source or the binary exist) or at libvirt's version.
options:
  _input:
    description: One share, with the keys of the share module's O(virtiofs.libvirt.share#module:shares) entries.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Check a share before using it
  ansible.builtin.assert:
    that: (share | virtiofs.libvirt.share_error) == ''
    fail_msg: "{{ share | virtiofs.libvirt.share_error }}"
  vars:
    share: {tag: data, source: /srv/data, cache: always}
"""

RETURN = r"""
_value:
  description: Empty string when the share passes; otherwise the problem and the fix.
  type: str
"""

from ansible_collections.virtiofs.libvirt.plugins.module_utils._host_plan import share_error


def _share_error(share):
    return share_error(share)


class FilterModule:
    def filters(self):
        return {"share_error": _share_error}
