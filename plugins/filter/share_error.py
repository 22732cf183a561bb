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

import re
from collections.abc import Mapping

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import DomainXMLError, ShareSpec

_INT_KEYS = ("thread_pool_size", "openfiles", "queue_size")


def _share_error(share):
    if not isinstance(share, Mapping):
        return f"a share must be a dict (tag, source, ...), got {share!r}"
    params = dict(share)
    for key in _INT_KEYS:  # the module's argument spec converts "4" to 4; so does this
        value = params.get(key)
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            params[key] = int(value)
    try:
        ShareSpec.from_params(params).validate()
    except DomainXMLError as exc:
        return str(exc)
    return ""


class FilterModule:
    def filters(self):
        return {"share_error": _share_error}
