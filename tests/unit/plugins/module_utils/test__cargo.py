# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for _cargo: the cargo helpers, and source builds through the installer with a scripted cargo."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # pragma: no cover - Python < 3.11
    tomllib = None

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _cargo as C
from ansible_collections.virtiofs.libvirt.plugins.module_utils._install import MANIFEST_NAME
from ansible_collections.virtiofs.libvirt.plugins.module_utils._install_error import InstallError
from install_world import rust_script, sha, write_exec


def test_find_source_root_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(InstallError, match="no Cargo.toml at the top of"):
        C.find_source_root(str(tmp_path))


# ------------------------------------------------------------------------------- cargo helpers

def test_render_cargo_config_is_valid_toml_with_source_replacement():
    text = C.render_cargo_config('/srv/reg "quoted"\\dir')
    if tomllib is None:  # pragma: no cover
        pytest.skip("tomllib needs Python 3.11")
    data = tomllib.loads(text)
    name = data["source"]["crates-io"]["replace-with"]
    assert data["source"][name]["directory"] == '/srv/reg "quoted"\\dir'
    assert data["net"]["offline"] is True


def test_read_cargo_package_reads_only_the_package_table():
    text = (
        '[package]\nname = "virtiofsd"\ndescription = "x"\nversion = "1.13.2"\n\n'
        '[dependencies.clap]\nversion = "4"\n'
    )
    assert C.read_cargo_package(text) == ("virtiofsd", "1.13.2")
    assert C.read_cargo_package('[dependencies]\nversion = "1"\n') == (None, None)


def test_registry_crates_and_newest(tmp_path):
    for v in ("1.9.0", "1.13.2", "1.10.1"):
        (tmp_path / f"virtiofsd-{v}").mkdir()
        (tmp_path / f"virtiofsd-{v}" / "Cargo.toml").write_text("")
    (tmp_path / "virtiofsd-notes").mkdir()
    (tmp_path / "vhost-0.10.0").mkdir()
    crates = C.registry_crates(str(tmp_path))
    assert sorted(crates) == ["1.10.1", "1.13.2", "1.9.0"]
    assert C.newest(crates) == "1.13.2"
    assert C.newest([]) is None


def test_missing_build_deps(tmp_path):
    libs = tmp_path / "lib"
    libs.mkdir()
    assert C.missing_build_deps(None, [str(libs)]) == ["cargo", "libseccomp", "libcap-ng"]
    (libs / "libseccomp.so").write_bytes(b"")
    (libs / "libcap-ng.a").write_bytes(b"")
    assert C.missing_build_deps("/usr/bin/cargo", [str(libs)]) == []
    assert C.missing_build_deps(None, [str(tmp_path / "l*")]) == ["cargo"]


@pytest.mark.parametrize("family,present,absent", [
    ("Debian", ["libseccomp-dev libcap-ng-dev cargo"], ["devel"]),
    ("RedHat", ["libseccomp-devel libcap-ng-devel cargo"], ["-dev "]),
    ("Archlinux", ["libseccomp-dev libcap-ng-dev cargo", "libseccomp-devel libcap-ng-devel cargo"], []),
    (None, ["libseccomp-dev libcap-ng-dev cargo", "libseccomp-devel libcap-ng-devel cargo"], []),
])
def test_build_deps_message(family, present, absent):
    msg = C.build_deps_message(["libseccomp"], family)
    assert "missing libseccomp" in msg
    for p in present:
        assert p in msg
    for a in absent:
        assert a not in msg


def test_output_tail():
    out = "\n".join(f"line {i}" for i in range(100))
    tail = C.output_tail(out, "error: linking failed", lines=5)
    assert tail.splitlines() == ["line 96", "line 97", "line 98", "line 99", "error: linking failed"]


# ------------------------------------------------------------------------------- source method

def fake_crate(root: Path, version: str = "1.13.2") -> Path:
    root.mkdir(parents=True)
    (root / "Cargo.toml").write_text(f'[package]\nname = "virtiofsd"\nversion = "{version}"\n')
    (root / "Cargo.lock").write_text("# lock\n")
    (root / "src").mkdir()
    (root / "src/main.rs").write_text("fn main() {}\n")
    return root


def fake_cargo(lab, daemon: bytes = None, rc: int = 0) -> Path:
    """A cargo that records its environment and writes ``daemon`` where cargo build would."""
    daemon = daemon if daemon is not None else rust_script()
    (lab.root / "daemon.bin").write_bytes(daemon)
    script = (
        "#!/bin/sh\n"
        f'LOG={lab.root}/cargo.log\n'
        'echo "argv: $*" >> "$LOG"\n'
        'echo "cwd: $(pwd)" >> "$LOG"\n'
        'echo "lock: $(test -e Cargo.lock && echo yes || echo no)" >> "$LOG"\n'
        'if [ -f .cargo/config.toml ]; then sed "s/^/config: /" .cargo/config.toml >> "$LOG"; fi\n'
        f'if [ {rc} -ne 0 ]; then i=0; while [ $i -lt 60 ]; do echo "   Compiling crate$i"; i=$((i+1)); done; '
        f'echo "error: linking with cc failed" >&2; exit {rc}; fi\n'
        'mkdir -p "$CARGO_TARGET_DIR/release"\n'
        f'cp {lab.root}/daemon.bin "$CARGO_TARGET_DIR/release/virtiofsd"\n'
    )
    return write_exec(lab.root / "bin" / "cargo", script.encode())


def test_source_offline_build_from_registry(lab):
    registry = lab.root / "registry"
    src = fake_crate(registry / "virtiofsd-1.13.2")
    fake_crate(registry / "virtiofsd-1.12.0", "1.12.0")
    lab.cargo = str(fake_cargo(lab))
    res = lab.run(method="source", crate_version="1.13.2", cargo_registry_dir=str(registry))
    assert res["changed"] is True
    assert res["version"] == "1.13.2"
    assert lab.binary.read_bytes() == rust_script()
    log = (lab.root / "cargo.log").read_text()
    assert "argv: build --release --offline" in log
    assert "lock: no" in log
    assert f'config: directory = "{registry}"' in log
    assert "config: offline = true" in log
    assert (src / "Cargo.lock").exists()  # the source itself is untouched
    assert os.listdir(lab.tmp) == []  # build dir removed
    man = json.loads((lab.install_dir / MANIFEST_NAME).read_text())
    assert man["request"]["crate_version"] == "1.13.2"
    assert man["method"] == "source"

    (lab.root / "cargo.log").unlink()
    res = lab.run(method="source", crate_version="1.13.2", cargo_registry_dir=str(registry))
    assert res["changed"] is False
    assert not (lab.root / "cargo.log").exists()  # cargo not run again


def test_source_archive_build(lab):
    src = fake_crate(lab.root / "stage" / "virtiofsd-1.13.2")
    arc = lab.root / "virtiofsd-1.13.2.tar.gz"
    with tarfile.open(arc, "w:gz") as tf:
        tf.add(src, arcname="virtiofsd-1.13.2")
    lab.cargo = str(fake_cargo(lab))
    checksum = f"sha256:{sha(arc.read_bytes())}"
    res = lab.run(method="source", source_archive=str(arc), checksum=checksum, crate_version="1.13.2")
    assert res["changed"] is True
    log = (lab.root / "cargo.log").read_text()
    assert "argv: build --release\n" in log  # online: no registry, no --offline
    assert "lock: yes" in log
    with pytest.raises(InstallError, match="checksum mismatch for source_archive"):
        lab.run(method="source", source_archive=str(arc), checksum="sha256:" + "1" * 64)


def test_source_build_failure_shows_cargo_tail_and_keeps_binary(lab):
    url, checksum = lab.publish_zip("v.zip", rust_script())
    lab.run(method="url", url=url, checksum=checksum)
    before = lab.binary.read_bytes()
    src = fake_crate(lab.root / "src" / "virtiofsd")
    lab.cargo = str(fake_cargo(lab, rc=101))
    with pytest.raises(InstallError) as exc:
        lab.run(method="source", source_dir=str(src))
    msg = str(exc.value)
    assert "cargo build of virtiofsd failed (rc 101)" in msg
    assert "error: linking with cc failed" in msg
    assert "Compiling crate59" in msg
    assert "Compiling crate5\n" not in msg  # only the tail
    assert lab.binary.read_bytes() == before
    assert os.listdir(lab.tmp) == []


def test_source_wrong_crate_version_fails_before_building(lab):
    src = fake_crate(lab.root / "src" / "virtiofsd", "1.12.0")
    lab.cargo = str(fake_cargo(lab))
    with pytest.raises(InstallError, match="holds virtiofsd 1.12.0, not crate_version 1.13.2"):
        lab.run(method="source", source_dir=str(src), crate_version="1.13.2")
    assert not (lab.root / "cargo.log").exists()


def test_source_registry_without_the_crate(lab):
    registry = lab.root / "registry"
    fake_crate(registry / "virtiofsd-1.12.0", "1.12.0")
    lab.cargo = str(fake_cargo(lab))
    with pytest.raises(InstallError, match=r"not found in cargo_registry_dir .*versions there: 1.12.0"):
        lab.run(method="source", crate_version="1.13.2", cargo_registry_dir=str(registry))


def test_source_missing_build_deps_names_packages(lab):
    src = fake_crate(lab.root / "src" / "virtiofsd")
    lab.cargo = None
    lab.lib_dirs = [str(lab.root / "nolibs")]
    with pytest.raises(InstallError) as exc:
        lab.run(method="source", source_dir=str(src))
    msg = str(exc.value)
    assert "missing cargo, libseccomp, libcap-ng" in msg
    assert "libseccomp-dev libcap-ng-dev cargo" in msg  # Debian 12 in this lab
    assert not lab.install_dir.exists()
    lab.os_family = "RedHat"
    with pytest.raises(InstallError, match="libseccomp-devel libcap-ng-devel cargo"):
        lab.run(method="source", source_dir=str(src))


def test_source_built_binary_must_match_crate_version(lab):
    src = fake_crate(lab.root / "src" / "virtiofsd", "1.13.2")
    lab.cargo = str(fake_cargo(lab, daemon=rust_script("1.13.1")))
    with pytest.raises(InstallError, match="reports version 1.13.1, not crate_version 1.13.2"):
        lab.run(method="source", source_dir=str(src), crate_version="1.13.2")
    assert not lab.install_dir.exists()


def test_source_check_mode_builds_nothing(lab):
    src = fake_crate(lab.root / "src" / "virtiofsd")
    lab.cargo = str(fake_cargo(lab))
    res = lab.run(check_mode=True, method="source", source_dir=str(src), crate_version="1.13.2")
    assert res["changed"] is True
    assert res["version"] == "1.13.2"
    assert not (lab.root / "cargo.log").exists()
    assert not lab.install_dir.exists()
