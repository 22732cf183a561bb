# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The corpus of domain definitions in ``VIRTIOFS_CORPUS_DIR``, one pytest parameter per file
(``test_corpus.py``, ``test__domain_xml_properties_corpus.py``). Unset, each corpus test
skips with :data:`SKIP_REASON`; CI sets the variable and ``test_corpus_is_complete`` fails
on an empty directory."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "VIRTIOFS_CORPUS_DIR"
CORPUS_DIR = os.environ.get(ENV)
FILES = sorted(Path(CORPUS_DIR).glob("*.xml")) if CORPUS_DIR and Path(CORPUS_DIR).is_dir() else []
SKIP_REASON = (
    f"{ENV} is not set: corpus tests need a directory of domain XML files "
    "(CI sets it to ../shared/corpus/domains)"
    if not CORPUS_DIR
    else f"{ENV}={CORPUS_DIR!r} holds no *.xml files"
)
PARAMS = [pytest.param(p, id=p.name) for p in FILES] or [pytest.param(None, id="no-corpus")]
