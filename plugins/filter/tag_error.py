# Copyright: virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: tag_error
short_description: Why a string cannot be a virtio-fs mount tag
version_added: 0.1.0
author: virtiofs.libvirt contributors
description:
  - Returns the reason why the input cannot be used as a virtio-fs mount tag (libvirt C(<target dir>)), or an empty
    string when it can.
  - This is the rule the M(virtiofs.libvirt.share) module applies and that the roles
    R(virtiofs.libvirt.host,ansible_collections.virtiofs.libvirt.host_role) and
    R(virtiofs.libvirt.guest,ansible_collections.virtiofs.libvirt.guest_role) check before they change anything.
  - "A tag is 1 to 36 bytes (UTF-8) made of C(A-Z a-z 0-9 . _ : @ + = / -); the guest writes it into C(/etc/fstab)
    and mount options, where whitespace, C(#), a backslash and C(,) would break. It must not start with C(-) (mount
    and virtiofsd would read it as an option)."
options:
  _input:
    description: The tag to check.
    type: raw
    required: true
  strict:
    description:
      - Check the length and the characters. V(false) only checks for a non-empty string (what a share that is being
        removed needs, libvirt itself stores any tag).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Refuse a bad tag early
  ansible.builtin.assert:
    that: (my_tag | virtiofs.libvirt.tag_error) == ''
    fail_msg: "{{ my_tag | virtiofs.libvirt.tag_error }}"
"""

RETURN = r"""
_value:
  description:
    - Empty string when the tag is valid; otherwise the problem and the fix, for example that
      C(my share) contains a space and which characters a tag may contain.
  type: str
"""

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import tag_error


def _builtin_value(value):
    """The value as its builtin type: Ansible >= 2.19 hands filters subclasses such as
    ``_AnsibleTaggedInt``, whose class name would otherwise end up in the message."""
    for cls in type(value).__mro__:
        if cls.__module__ == "builtins" and cls is not object:
            return value if value.__class__ is cls else cls(value)
    return value


def _tag_error(tag, strict=True):
    return tag_error(_builtin_value(tag), strict=boolean(strict, strict=True)) or ""


class FilterModule:
    def filters(self):
        return {"tag_error": _tag_error}
