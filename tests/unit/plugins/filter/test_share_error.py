# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The share_error filter: the share module's checks on one shares[] entry, exact messages."""
from __future__ import annotations

import pytest

from ansible_collections.virtiofs.libvirt.plugins.filter.share_error import FilterModule

share_error = FilterModule().filters()["share_error"]


@pytest.mark.parametrize("share", [
    {"tag": "data", "source": "/srv/data", "cache": "always"},
    {"tag": "data", "source": "/srv", "sandbox": "chroot", "readonly": True},
    {"tag": "data", "source": "/srv", "thread_pool_size": "4"},  # converted like the argument spec does
    {"tag": "data", "state": "absent"},  # a removal needs no source
])
def test_good_shares(share):
    assert share_error(share) == ""


@pytest.mark.parametrize("share,message", [
    ("data", "a share must be a dict (tag, source, ...), got 'data'"),
    ({"tag": "data"}, "share 'data': source is required with state=present (an absolute host directory)"),
    ({"tag": "data", "source": "srv"}, "share 'data': source 'srv' is a relative path: give an absolute host directory"),
    ({"tag": "data", "source": "/srv", "cache": "auto"},
     "share 'data': cache must be one of none, always (libvirt's values), got 'auto'"),
    ({"tag": "data", "source": "/srv", "sandbox": "none"}, "share 'data': sandbox must be one of namespace, chroot, got 'none'"),
    ({"tag": "data", "source": "/srv", "state": "gone"}, "share 'data': state must be one of present, absent, got 'gone'"),
    ({"tag": "data", "source": "/srv", "thread_pool_size": "-1"},
     "share 'data': thread_pool_size must be an integer >= 0, got -1"),
    ({"tag": "data", "source": "/srv", "thread_pool_size": "four"},
     "share 'data': thread_pool_size must be an integer >= 0, got 'four'"),
    ({"tag": "data", "source": "/srv", "binary_path": "/opt//v.sh"},
     "share 'data': binary_path '/opt//v.sh' is not in normal form (libvirt would store '/opt/v.sh'): write it as '/opt/v.sh'"),
    ({"tag": "data", "source": "/srv", "idmap": {"uid": [{"start": 0, "target": 1000, "count": 0}]}},
     "share 'data': idmap uid range {'start': 0, 'target': 1000, 'count': 0} is invalid: start and target must be >= 0 "
     "and count >= 1"),
    ({"tag": "bad tag", "source": "/srv"},
     "tag 'bad tag' contains ' ': a tag may only contain A-Z a-z 0-9 . _ : @ + = / - (the guest writes it into /etc/fstab "
     "and mount options); rename the share"),
])
def test_bad_shares(share, message):
    assert share_error(share) == message
