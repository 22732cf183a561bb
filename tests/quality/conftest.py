# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for the quality gates: the collection as a clean ansible_collections tree."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def tracked_files() -> list[str]:
    """Files git tracks plus untracked ones it does not ignore (what a commit would hold)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if f and (ROOT / f).is_file()]


@pytest.fixture(scope="session")
def collection_tree(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("coll")
    dest = base / "ansible_collections" / "virtiofs" / "libvirt"
    for rel in tracked_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    # ansible-test wants a git-free tree or a real repository; a fresh one keeps it simple.
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    return dest


def tool(name: str) -> str:
    path = VENV_BIN / name
    return str(path) if path.exists() else name


def env_with_venv() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env
