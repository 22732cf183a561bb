# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The libvirt adapter's refusals, against libvirt's own test driver (test:///default)."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("libvirt")

from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt import (  # noqa: E402
    Connection,
    LibvirtAdapterError,
)


def test_a_definition_libvirt_refuses_leaves_the_domain_unchanged():
    with Connection("test:///default") as conn:
        dom = conn.lookup("test")
        before = dom.inactive_xml()
        bad = re.sub(r"<vcpu([^>]*)>\d+</vcpu>", r"<vcpu\1>abc</vcpu>", before)
        assert bad != before
        with pytest.raises(LibvirtAdapterError) as err:
            dom.define(bad, before)
        assert "libvirt refused the new definition of domain 'test'" in str(err.value)
        assert str(err.value).endswith("The domain definition was not changed.")
        assert dom.inactive_xml() == before


def test_an_unknown_domain_names_the_fix():
    with Connection("test:///default") as conn:
        with pytest.raises(LibvirtAdapterError) as err:
            conn.lookup("no-such-domain")
    assert "domain 'no-such-domain' not found at 'test:///default'" in str(err.value)
    assert "(virsh list --all), or use xml_file for a definition that is not defined yet" in str(err.value)
