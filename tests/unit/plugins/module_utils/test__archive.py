# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for _archive: sha256 checksums, archive members, safe extraction (real files in tmp_path)."""

from __future__ import annotations

import zipfile

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _archive as A
from ansible_collections.virtiofs.libvirt.plugins.module_utils import _cargo as C
from ansible_collections.virtiofs.libvirt.plugins.module_utils._install_error import InstallError
from install_world import ELF, MEMBER, make_tar, make_zip, rust_script, sha


# ------------------------------------------------------------------------------- checksums

def test_parse_checksum_accepts_sha256_and_normalises_case():
    digest = "AB" * 32
    assert A.parse_checksum(f"sha256:{digest}") == "ab" * 32
    assert A.parse_checksum(f"  SHA256:{digest} ") == "ab" * 32


@pytest.mark.parametrize("text,fragment", [
    ("ab" * 32, "no algorithm prefix"),
    ("md5:" + "ab" * 16, "is not supported: only sha256 is"),
    ("sha512:" + "ab" * 64, "only sha256"),
    ("sha256:" + "ab" * 31, "is not a sha256 digest: expected sha256: followed by 64 hex digits"),
    ("sha256:" + "zz" * 32, "64 hex digits"),
    ("", "no algorithm prefix"),
])
def test_parse_checksum_rejects_bad_values(text, fragment):
    with pytest.raises(InstallError, match=fragment):
        A.parse_checksum(text)


def test_verify_checksum(tmp_path):
    f = tmp_path / "a.zip"
    f.write_bytes(b"hello")
    assert A.verify_checksum(str(f), f"sha256:{sha(b'hello')}") == sha(b"hello")
    with pytest.raises(InstallError) as exc:
        A.verify_checksum(str(f), "sha256:" + "0" * 64, "the artifact")
    assert "checksum mismatch for the artifact" in str(exc.value)
    assert f"got sha256:{sha(b'hello')}" in str(exc.value)
    assert A.sha256_file(str(tmp_path / "missing")) is None


# ------------------------------------------------------------------------------- archives

def test_detect_archive_kinds(tmp_path):
    make_zip(tmp_path / "a.zip", {"x": b"1"})
    make_tar(tmp_path / "a.tgz", {"x": b"1"}, "w:gz")
    make_tar(tmp_path / "a.txz", {"x": b"1"}, "w:xz")
    make_tar(tmp_path / "a.tar", {"x": b"1"}, "w")
    (tmp_path / "bin").write_bytes(ELF)
    (tmp_path / "junk").write_bytes(b"<html>not found</html>")
    assert A.detect_archive(str(tmp_path / "a.zip")) == "zip"
    assert A.detect_archive(str(tmp_path / "a.tgz")) == "tar"
    assert A.detect_archive(str(tmp_path / "a.txz")) == "tar"
    assert A.detect_archive(str(tmp_path / "a.tar")) == "tar"
    assert A.detect_archive(str(tmp_path / "bin")) == "binary"
    with pytest.raises(InstallError, match="is neither a zip, a tar"):
        A.detect_archive(str(tmp_path / "junk"))


@pytest.mark.parametrize("fmt", ["zip", "w:gz", "w:xz"])
def test_extract_member_from_upstream_layout(tmp_path, fmt):
    payload = rust_script()
    members = {"README": b"readme", MEMBER: payload, "target/x86_64-unknown-linux-musl/release/virtiofsd.d": b"deps"}
    arc = tmp_path / "artifact"
    if fmt == "zip":
        make_zip(arc, members)
    else:
        make_tar(arc, {f"./{k}": v for k, v in members.items()}, fmt)  # tar with ./ prefixes
    dest = tmp_path / "out"
    kind = A.extract_member(str(arc), MEMBER, str(dest))
    assert kind == ("zip" if fmt == "zip" else "tar")
    assert dest.read_bytes() == payload


@pytest.mark.parametrize("fmt", ["zip", "w:gz"])
def test_extract_member_missing_names_candidates(tmp_path, fmt):
    arc = tmp_path / "artifact"
    members = {"target/release/virtiofsd": b"x", "README": b"r"}
    make_zip(arc, members) if fmt == "zip" else make_tar(arc, members, fmt)
    dest = tmp_path / "out"
    with pytest.raises(InstallError) as exc:
        A.extract_member(str(arc), MEMBER, str(dest))
    msg = str(exc.value)
    assert f"member '{MEMBER}' not found" in msg
    assert "target/release/virtiofsd" in msg  # the candidate with the same base name
    assert "README" not in msg
    assert "(set member to the path of the virtiofsd binary inside the archive)" in msg
    assert not dest.exists()


def test_extract_member_rejects_symlink_and_directory(tmp_path):
    arc = tmp_path / "a.tgz"
    make_tar(arc, {"bin/virtiofsd": ("symlink", "/usr/bin/sh")})
    with pytest.raises(InstallError, match="not a regular file .a link."):
        A.extract_member(str(arc), "bin/virtiofsd", str(tmp_path / "out"))
    z = tmp_path / "d.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("dir/", b"")
    with pytest.raises(InstallError, match="not a regular file"):
        A.extract_member(str(z), "dir", str(tmp_path / "out"))


def test_extract_member_bare_binary_is_copied(tmp_path):
    src = tmp_path / "virtiofsd"
    src.write_bytes(ELF)
    dest = tmp_path / "out"
    assert A.extract_member(str(src), "ignored/member", str(dest)) == "binary"
    assert dest.read_bytes() == ELF


def test_extract_member_rejects_parent_paths(tmp_path):
    arc = tmp_path / "a.zip"
    make_zip(arc, {"x": b"1"})
    with pytest.raises(InstallError, match="not a relative path"):
        A.extract_member(str(arc), "../etc/passwd", str(tmp_path / "out"))


def test_corrupt_zip_is_a_clear_error(tmp_path):
    arc = tmp_path / "a.zip"
    arc.write_bytes(b"PK\x03\x04" + b"garbage" * 10)
    with pytest.raises(InstallError, match="cannot read archive"):
        A.extract_member(str(arc), MEMBER, str(tmp_path / "out"))


def test_safe_extract_tar(tmp_path):
    good = tmp_path / "good.tgz"
    make_tar(good, {"virtiofsd-1.13.2/Cargo.toml": b'[package]\nname = "virtiofsd"\n',
                    "virtiofsd-1.13.2/src/main.rs": b"fn main() {}\n"})
    out = tmp_path / "out"
    out.mkdir()
    A.safe_extract_tar(str(good), str(out))
    assert (out / "virtiofsd-1.13.2/src/main.rs").read_bytes() == b"fn main() {}\n"
    assert C.find_source_root(str(out)) == str(out / "virtiofsd-1.13.2")
    for name, members in {
        "dotdot.tgz": {"../evil": b"x"},
        "abs.tgz": {"/etc/evil": b"x"},
        "link.tgz": {"a/link": ("symlink", "../../etc/passwd")},
    }.items():
        bad = tmp_path / name
        make_tar(bad, members)
        with pytest.raises(InstallError, match="outside the archive"):
            A.safe_extract_tar(str(bad), str(out))
    assert not (tmp_path / "evil").exists()
