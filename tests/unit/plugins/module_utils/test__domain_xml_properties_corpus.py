# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property: random sequences of share operations on the corpus documents (issue 12).

For each corpus document (``VIRTIOFS_CORPUS_DIR``, see ``corpus_files.py``) hypothesis draws
lists of operations: add a share with a new tag, change an added share (a whole new random
spec for its tag), remove an added share, remove a tag that is not there, re-apply the
current set. After every step:

* the step applied again changes nothing: ``changed`` False, no actions, the same bytes
  (on the document in memory and on the bytes re-read, as the next module run sees them);
* every added share reads back as its spec; the document's other virtio-fs shares are as
  in the original;
* everything outside the owned elements is canonically (C14N 2.0) the original, and every
  element the module does not own keeps its exact serialisation;
* shared memory is in place whenever a share was added.

At the end every added share is removed: ``outside_c14n`` is the original's, the original
shares are untouched, and the bytes are exactly the original's when it already had shared
memory. Otherwise the ``<memoryBacking>`` parts the module added stay (removing a share never
takes shared memory away, ``test_remove_keeps_memory_backing``) and the bytes equal those of
the original with only that memory backing added (made without adding or removing a share):
nothing of the history shows. One exception, in both cases: an empty ``<devices>`` is written
``<devices/>`` after its last share went, whatever form it had and whether the module created
it (a later run cannot tell), so the bytes are compared without an empty ``<devices>``.

Each document is its own test with a few examples from a seed of its own (its file name) and
no example database, so CI sees the same examples each time (``print_blob`` on failure).
"""
from __future__ import annotations

import zlib

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from lxml import etree

from corpus_files import PARAMS, SKIP_REASON
from domain_strategies import share_specs, tags
from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import (
    MANAGED_KEYS,
    DomainXML,
    PatchResult,
    ShareSpec,
    _ensure_shared_memory,
    apply_shares,
    canonical,
    filesystem_tag,
    is_virtiofs,
    share_to_dict,
)

SETTINGS = settings(
    max_examples=10,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _managed(d):
    return {k: d.get(k) for k in MANAGED_KEYS}


def _other_virtiofs(doc, owned):
    return sorted(
        (filesystem_tag(fs) or "", canonical(fs)) for fs in doc.virtiofs_filesystems() if filesystem_tag(fs) not in owned
    )


def _unowned_elements(doc, owned):
    """Exact serialisation of every element the module does not own, in document order.

    Top-level elements other than ``<devices>``/``<memoryBacking>``, devices that are not
    owned virtio-fs shares, and ``<memoryBacking>`` children other than source/access;
    without their tails (the whitespace the patcher adjusts next to what it inserts).
    """
    out = []
    for el in doc.root:
        if not isinstance(el.tag, str):
            out.append(etree.tostring(el, with_tail=False))
        elif el.tag == "devices":
            out.extend(
                etree.tostring(c, with_tail=False)
                for c in el
                if not (isinstance(c.tag, str) and is_virtiofs(c) and filesystem_tag(c) in owned)
            )
        elif el.tag == "memoryBacking":
            out.extend(
                etree.tostring(c, with_tail=False)
                for c in el
                if not (isinstance(c.tag, str) and c.tag in ("source", "access"))
            )
        else:
            out.append(etree.tostring(el, with_tail=False))
    return out


def _new_tag(tag, taken):
    """``tag``, or with a numeric suffix when the document or the scenario already has it."""
    out, i = tag, 0
    while out in taken:
        i += 1
        out = f"{tag}-{i}"
    return out


@st.composite
def operations(draw, doc):
    """Operations on ``doc``: ("add", spec), ("change", spec), ("remove", tag),
    ("remove-missing", tag), ("reapply",)."""
    taken = {filesystem_tag(fs) for fs in doc.filesystems()}
    live = []
    ops = []
    for _step in range(draw(st.integers(1, 8))):
        kinds = ["add", "remove-missing"] + (["change", "remove", "reapply"] if live else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "add":
            tag = _new_tag(draw(tags), taken)
            taken.add(tag)
            live.append(tag)
            ops.append(("add", draw(share_specs(tag=tag))))
        elif kind == "change":
            ops.append(("change", draw(share_specs(tag=draw(st.sampled_from(live))))))
        elif kind == "remove":
            tag = draw(st.sampled_from(live))
            live.remove(tag)
            ops.append(("remove", tag))
        elif kind == "remove-missing":
            ops.append(("remove-missing", _new_tag(draw(tags), taken)))
        else:
            ops.append(("reapply",))
    return ops


def _step_specs(op, model):
    kind = op[0]
    if kind in ("add", "change"):
        return [op[1]]
    if kind in ("remove", "remove-missing"):
        return [ShareSpec(tag=op[1], state="absent")]
    return list(model.values())


def _assert_idempotent(doc, specs):
    data = doc.to_bytes()
    for again in (doc, DomainXML.from_string(data)):
        result = apply_shares(again, specs)
        assert result.changed is False, result.actions
        assert result.actions == []
        assert again.to_bytes() == data


@pytest.mark.parametrize("path", PARAMS)
def test_random_operation_sequences(path):
    if path is None:
        pytest.skip(SKIP_REASON)
    data = path.read_bytes()

    # one seed per document: each document gets its own operation sequences, the same on every run
    @seed(zlib.crc32(path.name.encode("utf-8")))
    @SETTINGS
    @given(ops=operations(DomainXML.from_string(data, what=path.name)))
    def check(ops):
        _check_sequence(path.name, data, ops)

    check()


def _check_sequence(name, data, ops):
    original = DomainXML.from_string(data, what=name)
    doc = DomainXML.from_string(data, what=name)
    owned = {op[1].tag if isinstance(op[1], ShareSpec) else op[1] for op in ops if len(op) > 1}
    outside = original.outside_c14n(owned)
    unowned = _unowned_elements(original, owned)
    others = _other_virtiofs(original, owned)
    model = {}
    added_any = False

    for op in ops:
        kind = op[0]
        specs = _step_specs(op, model)
        result = apply_shares(doc, specs)
        if kind == "add":
            assert result.changed and result.added == [op[1].tag], result.actions
        elif kind == "change":
            differs = _managed(model[op[1].tag].to_dict()) != _managed(op[1].to_dict())
            assert result.changed is differs and result.updated == ([op[1].tag] if differs else []), result.actions
        elif kind == "remove":
            assert result.changed and result.removed == [op[1]], result.actions
        else:
            assert result.changed is False and result.actions == [], (op, result.actions)
        if kind in ("add", "change"):
            model[op[1].tag] = op[1]
        elif kind == "remove":
            del model[op[1]]
        added_any = added_any or kind == "add"

        _assert_idempotent(doc, specs)
        for tag, spec in model.items():
            assert _managed(share_to_dict(doc.find_share(tag))) == _managed(spec.to_dict()), tag
        assert {filesystem_tag(fs) for fs in doc.virtiofs_filesystems()} & owned == set(model)
        assert _other_virtiofs(doc, owned) == others
        assert doc.outside_c14n(owned) == outside
        assert _unowned_elements(doc, owned) == unowned
        if added_any:
            assert doc.memory_status()["shared"], "shared memory must stay once a share was added"

    cleanup = [ShareSpec(tag=tag, state="absent") for tag in model]
    apply_shares(doc, cleanup)
    _assert_idempotent(doc, cleanup)
    assert doc.outside_c14n(owned) == outside
    assert _unowned_elements(doc, owned) == unowned
    assert doc.shares() == original.shares()
    # An empty <devices> is written in one form whatever the history: as <devices/> after its
    # last share went (whether the module created it or the original had <devices/> or
    # <devices>\n  </devices>: a later run cannot tell); it is compared without that element.
    if original.memory_status()["shared"] or not added_any:
        assert _without_empty_devices(doc) == _without_empty_devices(original)
    else:
        # the original with nothing but the memory backing a share needs, made without adding
        # or removing any share
        reference = DomainXML.from_string(data, what=name)
        _ensure_shared_memory(reference, PatchResult())
        assert doc.memory_status()["shared"]
        assert _without_empty_devices(doc) == _without_empty_devices(reference)


def _without_empty_devices(doc):
    """The bytes of ``doc`` with an element-less, whitespace-only, attribute-less ``<devices>`` removed."""
    doc = doc.copy()
    devices = doc.devices
    if devices is not None and not len(devices) and not (devices.text or "").strip() and not devices.attrib:
        doc.layout.remove(devices)
    return doc.to_bytes()
