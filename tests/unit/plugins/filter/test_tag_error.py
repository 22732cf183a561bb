# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tag_error filter: empty string for a good tag, the exact reason for a bad one."""
from __future__ import annotations

import pytest

from ansible_collections.virtiofs.libvirt.plugins.filter.tag_error import FilterModule

tag_error = FilterModule().filters()["tag_error"]

CHARS = "a tag may only contain A-Z a-z 0-9 . _ : @ + = / - (the guest writes it into /etc/fstab and mount options)"


@pytest.mark.parametrize("tag", ["data", "a.b_c:d@e+f=g/h-i", "x" * 36, "UPPER-9"])
def test_good_tags(tag):
    assert tag_error(tag) == ""


@pytest.mark.parametrize("tag,message", [
    ("my share", f"tag 'my share' contains ' ': {CHARS}; rename the share"),
    ("a#b", f"tag 'a#b' contains '#': {CHARS}; rename the share"),
    ("a,b", f"tag 'a,b' contains ',': {CHARS}; rename the share"),
    ("é" * 18, f"tag '{'é' * 18}' contains 'é': {CHARS}; rename the share"),  # 36 bytes, but not ASCII
    ("x" * 37, f"tag '{'x' * 37}' is 37 bytes long but a virtio-fs tag holds at most 36 bytes: use a shorter tag"),
    ("é" * 19, f"tag '{'é' * 19}' is 38 bytes long but a virtio-fs tag holds at most 36 bytes: use a shorter tag"),
    ("", "tag is empty: give the mount tag (libvirt <target dir>), 1 to 36 bytes"),
    (None, "tag is empty: give the mount tag (libvirt <target dir>), 1 to 36 bytes"),
    (5, "tag must be a string, got int 5: quote it in YAML"),
])
def test_bad_tags(tag, message):
    assert tag_error(tag) == message


def test_non_strict_checks_only_for_a_string():
    assert tag_error("my share", strict=False) == ""
    assert tag_error("é" * 18, strict=False) == ""
    assert tag_error("x" * 37, strict="no") == ""  # Ansible booleans, as a template passes them
    assert tag_error("", strict=False) == "tag is empty: give the mount tag (libvirt <target dir>), 1 to 36 bytes"
    assert tag_error(5, strict=False) == "tag must be a string, got int 5: quote it in YAML"
    with pytest.raises(TypeError):
        tag_error("data", strict="sometimes")


class _AnsibleTaggedInt(int):
    """Stands in for the int subclass Ansible >= 2.19 passes to filters."""


def test_a_number_is_named_as_int_even_when_ansible_wraps_it():
    assert tag_error(_AnsibleTaggedInt(0)) == "tag must be a string, got int 0: quote it in YAML"
    assert tag_error(_AnsibleTaggedInt(0), strict=False) == "tag must be a string, got int 0: quote it in YAML"
