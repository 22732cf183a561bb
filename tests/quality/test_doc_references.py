# SPDX-License-Identifier: GPL-3.0-or-later
"""Comments and docs cite only documents the repository holds (issue 13): every ``*.md`` a text file
names resolves to a file here, or is one of the few names below that are not documents of ours."""
from __future__ import annotations

import re

from .conftest import ROOT, tracked_files

# Names that are not references to a document of this repository, and why.
NOT_OUR_DOCUMENTS = {
    "virtiofs-audit.md": "the report the audit playbook writes (output, not a source)",
    "doc/xattr-mapping.md": "upstream virtiofsd's doc, cited with its repository in docs/reference.md",
}
# Documents that lived outside the repository; their facts are in docs/reference.md now.
OUTSIDE = ("virtiofs.md", "testbed.md", "anchors.md", "shared/reference")
SCANNED = ("plugins/", "roles/", "tests/", "playbooks/", "extensions/", "docs/", "meta/", "changelogs/",
           ".ci/", "README.md", "galaxy.yml")
MD_REF = re.compile(r"(?<![\w./-])((?:\.{0,2}/)?(?:[\w.-]+/)*[\w-]+(?:\.[\w-]+)*\.md)\b")


def _text_files():
    for rel in tracked_files():
        if not rel.startswith(SCANNED) or rel == "tests/quality/test_doc_references.py":
            continue
        try:
            yield rel, (ROOT / rel).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue


def test_scanner_finds_references():
    found = MD_REF.findall("see docs/reference.md C.1, ../shared/reference/virtiofs.md and `README.md`.")
    assert found == ["docs/reference.md", "../shared/reference/virtiofs.md", "README.md"]


def test_no_reference_to_a_document_outside_the_repository():
    md_names = {p.rsplit("/", 1)[-1] for p in tracked_files() if p.endswith(".md")}
    bad = []
    for rel, text in _text_files():
        for n, line in enumerate(text.splitlines(), 1):
            bad += [f"{rel}:{n}: names {word!r} (outside the repository; cite docs/ instead)"
                    for word in OUTSIDE if word in line]
            for ref in MD_REF.findall(line):
                if any(ref.endswith(name) for name in NOT_OUR_DOCUMENTS):
                    continue
                here = (ROOT / rel).parent
                if (ROOT / ref).is_file() or (here / ref).is_file():
                    continue
                if "/" not in ref.strip("./") and ref.strip("./") in md_names:
                    continue
                bad.append(f"{rel}:{n}: {ref!r} is not a file of the repository")
    assert not bad, "\n".join(bad)
