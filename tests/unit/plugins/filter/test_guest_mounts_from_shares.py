# SPDX-License-Identifier: GPL-3.0-or-later
"""The filter virtiofs.libvirt.guest_mounts_from_shares: Ansible's tagged values in, plain mounts out."""
from __future__ import annotations

from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.virtiofs.libvirt.plugins.filter.guest_mounts_from_shares import FilterModule


def test_filter_is_registered_and_unwraps_ansible_values():
    flt = FilterModule().filters()["guest_mounts_from_shares"]
    shares = wrap_var([{"domain": "web01", "tag": "www", "mount_options": "ro"}, {"domain": "x", "tag": "y"}])
    result = flt(shares, wrap_var("web01"))
    assert result == [{"tag": "www", "path": "/mnt/www", "state": "mounted", "options": "ro"}]
    assert result[0]["tag"].__class__ is str and result[0]["options"].__class__ is str
