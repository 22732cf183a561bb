# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The share option table is the one source of the share options: the module's argument spec,
its documentation (the doc fragment and the entries of shares/domains), ShareSpec and the host
role's share keys all agree with it."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import yaml

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _share_options as so
from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import ShareSpec
from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt_features import FEATURES
from ansible_collections.virtiofs.libvirt.plugins.module_utils._host_plan import own_share_keys

ROOT = Path(__file__).resolve().parents[4]


def module_documentation() -> dict:
    tree = ast.parse((ROOT / "plugins/modules/share.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "DOCUMENTATION":
            return yaml.safe_load(node.value.value)
    raise AssertionError("no DOCUMENTATION")


def test_every_feature_named_by_the_table_exists():
    for option in so.TABLE:
        if option.feature is not None:
            assert option.feature in FEATURES, option.name
    assert so.OPTIONS["openfiles"].libvirt_since == "10.6.0"
    assert so.OPTIONS["readonly"].version_note() == "Needs libvirt >= 11.0.0 and virtiofsd >= 1.13.0."
    assert so.OPTIONS["cache"].version_note() == ""  # as old as virtio-fs itself


def test_share_spec_fields_follow_the_table():
    fields = {f.name for f in dataclasses.fields(ShareSpec)}
    spec_options = set(so.SPEC_OPTIONS) - {"idmap"}
    assert spec_options | {"tag", "state", "uid_map", "gid_map"} == fields
    spec = ShareSpec.from_params({"tag": "t", "source": "/s", "cache": "none", "openfiles": 5,
                                  "idmap": {"uid": [{"start": 0, "target": 1000, "count": 1}]}})
    d = spec.to_dict()
    assert set(d) == {"tag", "lock"} | set(so.SPEC_OPTIONS)
    assert (d["cache"], d["openfiles"], d["idmap"]["uid"]) == ("none", 5, [{"start": 0, "target": 1000, "count": 1}])
    assert spec.features() == ["virtiofs", "cache", "idmap", "openfiles"]
    assert so.MANAGED_KEYS == so.SPEC_OPTIONS + ("lock",)


def test_argument_spec_comes_from_the_table():
    entry = so.share_argument_spec(entry=True)
    assert list(entry) == [o.name for o in so.TABLE]
    assert entry["tag"] == {"type": "str", "required": True}
    assert entry["cache"] == {"type": "str", "choices": ["none", "always"]}
    assert entry["create_source"] == {"type": "bool"}  # defaults to the top-level option
    top = so.share_argument_spec(entry=False)
    assert "tag" not in top and "state" not in top
    assert top["create_source"] == {"type": "bool", "default": False}
    assert top["idmap"]["options"]["uid"]["options"]["count"] == {"type": "int", "required": True}


def fragment_documentation() -> dict:
    from ansible_collections.virtiofs.libvirt.plugins.doc_fragments._share import ModuleDocFragment

    return yaml.safe_load(ModuleDocFragment.DOCUMENTATION)


def test_doc_fragment_is_the_table():
    expected = so.documentation()
    got = fragment_documentation()["options"]
    assert got == expected, "regenerate plugins/doc_fragments/_share.py:\n" + yaml.safe_dump(
        {"options": expected}, sort_keys=False, width=110)


def test_module_documents_entries_from_the_table():
    doc = module_documentation()
    assert "virtiofs.libvirt._share" in doc["extends_documentation_fragment"]
    expected = so.entry_documentation()
    assert doc["options"]["shares"]["suboptions"] == expected
    assert doc["options"]["domains"]["suboptions"]["shares"]["suboptions"] == expected
    for name in so.documentation():
        assert name not in doc["options"], f"{name} is documented twice (module and fragment)"


def test_host_role_share_keys_agree_with_the_table():
    specs = yaml.safe_load((ROOT / "roles/host/meta/argument_specs.yml").read_text())
    role = specs["argument_specs"]["main"]["options"]["virtiofs_host_shares"]["options"]
    role_only = own_share_keys()
    for option in so.TABLE:
        if option.kind == so.SOURCE and option.name != "create_source":
            continue  # the role calls these source_owner/source_group/source_mode
        assert option.name in role, f"share option {option.name} is missing in the host role's argument_specs"
        want = "str" if option.type == "path" else option.type
        assert role[option.name].get("type", "str") == want, option.name
        if option.choices:
            assert role[option.name].get("choices") == list(option.choices), option.name
    for key in role:
        assert key in so.OPTIONS or key in role_only, (
            f"the host role documents share key {key}, which is neither a share option nor a role key")
