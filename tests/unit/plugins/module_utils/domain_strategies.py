# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hypothesis strategies for valid virtio-fs shares, shared by the patcher's property tests
(``test__domain_xml.py`` on the local fixtures, ``test__domain_xml_properties_corpus.py`` on
the corpus)."""
from __future__ import annotations

from hypothesis import strategies as st

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import IdMapRange, ShareSpec

# what tag_error accepts (the fstab-safe set); refusals are tested on their own
TAG_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@+=/-"

# a leading '-' would be read as an option (refused, tested on its own)
tags = st.text(TAG_CHARS, min_size=1, max_size=12).filter(lambda tag: not tag.startswith("-"))
_ranges = st.lists(st.builds(IdMapRange, st.integers(0, 1000), st.integers(0, 200000), st.integers(1, 65536)), max_size=2)


@st.composite
def share_specs(draw, tag=None):
    """A valid ``state=present`` spec; every option is drawn, ``None`` (unset) included."""
    tag = tag or draw(tags)
    opt = st.none() | st.booleans()
    return ShareSpec(
        tag=tag,
        # '..' components are refused (tested on their own)
        source="/" + draw(st.text(st.sampled_from("abcxyz/_-."), min_size=1, max_size=20).filter(
            lambda path: ".." not in path.split("/"))),
        binary_path=draw(st.none() | st.sampled_from(["/usr/libexec/virtiofsd", "/opt/virtiofsd-rust/virtiofsd.sh"])),
        readonly=draw(st.booleans()),
        cache=draw(st.none() | st.sampled_from(["none", "always"])),
        sandbox=draw(st.none() | st.sampled_from(["namespace", "chroot"])),
        xattr=draw(opt),
        thread_pool_size=draw(st.none() | st.integers(0, 64)),
        openfiles=draw(st.none() | st.integers(1, 1 << 20)),
        queue_size=draw(st.none() | st.sampled_from([128, 256, 1024])),
        uid_map=draw(_ranges),
        gid_map=draw(_ranges),
        ats=draw(opt),
        iommu=draw(opt),
        packed=draw(opt),
    )


@st.composite
def spec_lists(draw):
    """1-6 specs with distinct tags, sometimes the tags the fixtures already use."""
    new = draw(st.lists(tags, min_size=1, max_size=4, unique=True).filter(lambda ts: "ninep" not in ts))
    # sometimes reuse tags that already exist in fixtures (data, logs, projects)
    extra = draw(st.lists(st.sampled_from(["data", "logs", "projects"]), unique=True, max_size=2))
    return [draw(share_specs(tag=t_)) for t_ in dict.fromkeys(extra + new)]
