# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Release archives of virtiofsd: sha256 checksums, the binary inside a zip/tar, safe extraction.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports. Used by ``_install`` (method url: the member of a release
archive) and ``_cargo`` (method source: the source tarball).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import stat
import tarfile
import typing as t
import zipfile

from ansible_collections.virtiofs.libvirt.plugins.module_utils._install_error import InstallError

ARCHIVE_ZIP = "zip"
ARCHIVE_TAR = "tar"
ARCHIVE_BINARY = "binary"

#: read size for hashing and copying
CHUNK_SIZE = 1 << 16
_MAX_MEMBER_SIZE = 1 << 30
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


# ---------------------------------------------------------------------------- checksums

def parse_checksum(text: str) -> str:
    """Parse ``sha256:<64 hex digits>`` into the lower-case hex digest."""
    value = (text or "").strip()
    algo, sep, digest = value.partition(":")
    if not sep:
        raise InstallError(
            f"checksum {text!r} has no algorithm prefix: write it as sha256:<64 hex digits>"
        )
    if algo.strip().lower() != "sha256":
        raise InstallError(
            f"checksum algorithm {algo!r} is not supported: only sha256 is (sha256:<64 hex digits>)"
        )
    digest = digest.strip()
    if not _SHA256_RE.match(digest):
        raise InstallError(
            f"checksum {text!r} is not a sha256 digest: expected sha256: followed by 64 hex digits"
        )
    return digest.lower()


def sha256_file(path: str) -> t.Optional[str]:
    """Hex sha256 of a file, or ``None`` when it does not exist."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK_SIZE), b""):
                h.update(chunk)
    except FileNotFoundError:
        return None
    return h.hexdigest()


def verify_checksum(path: str, checksum: str, what: t.Optional[str] = None) -> str:
    """Compare a file with ``sha256:<hex>``; return the digest or raise :class:`InstallError`."""
    wanted = parse_checksum(checksum)
    actual = sha256_file(path)
    if actual != wanted:
        raise InstallError(
            f"checksum mismatch for {what or path}: expected sha256:{wanted}, got sha256:{actual}; "
            "nothing was installed (check the url or update checksum)"
        )
    return actual


# ---------------------------------------------------------------------------- archives

def detect_archive(path: str) -> str:
    """``zip``, ``tar`` (plain, gzip, xz, bzip2) or ``binary`` (an ELF file), by content."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"\x7fELF"):
        return ARCHIVE_BINARY
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return ARCHIVE_ZIP
    if head.startswith((b"\x1f\x8b", b"\xfd7zXZ\x00", b"BZh")) or head[257:262] == b"ustar":
        return ARCHIVE_TAR
    raise InstallError(
        f"{path} is neither a zip, a tar(.gz/.xz/.bz2) archive nor an ELF binary "
        f"(first bytes {head[:8]!r}); check the url"
    )


def normalize_member(name: str) -> str:
    """``./a//b/`` -> ``a/b``; archive member names compare after this."""
    name = (name or "").replace("\\", "/").strip()
    while name.startswith("./"):
        name = name[2:]
    name = name.lstrip("/")
    return posixpath.normpath(name) if name else ""


def _member_hint(names: t.List[str], member: str) -> str:
    base = posixpath.basename(member)
    cands = [n for n in names if posixpath.basename(n) == base] or names
    shown = ", ".join(sorted(cands)[:15]) or "(no files)"
    more = f" and {len(cands) - 15} more" if len(cands) > 15 else ""
    return f"it contains: {shown}{more}"


def _copy_stream(src: t.BinaryIO, dest_path: str, limit: int = _MAX_MEMBER_SIZE) -> None:
    total = 0
    with open(dest_path, "wb") as out:
        for chunk in iter(lambda: src.read(CHUNK_SIZE), b""):
            total += len(chunk)
            if total > limit:
                raise InstallError(f"archive member is larger than {limit} bytes; refusing to extract it")
            out.write(chunk)


def extract_member(archive_path: str, member: str, dest_path: str) -> str:
    """Write ``member`` of a zip/tar archive (or a bare ELF binary) to ``dest_path``.

    Returns the archive kind. Raises :class:`InstallError` naming the members that exist
    when ``member`` is missing, and for links or other non-regular members.
    """
    kind = detect_archive(archive_path)
    if kind == ARCHIVE_BINARY:
        with open(archive_path, "rb") as src:
            _copy_stream(src, dest_path)
        return kind
    want = normalize_member(member)
    if not want or want.startswith("../"):
        raise InstallError(f"member {member!r} is not a relative path inside the archive")
    try:
        if kind == ARCHIVE_ZIP:
            with zipfile.ZipFile(archive_path) as zf:
                infos = [i for i in zf.infolist() if normalize_member(i.filename) == want]
                if not infos:
                    names = [normalize_member(i.filename) for i in zf.infolist() if not i.is_dir()]
                    raise InstallError(
                        f"member {member!r} not found in the zip archive; {_member_hint(names, want)} "
                        "(set member to the path of the virtiofsd binary inside the archive)"
                    )
                info = infos[-1]
                mode = (info.external_attr >> 16) & 0o170000
                if info.is_dir() or (mode and mode != stat.S_IFREG):
                    raise InstallError(f"member {member!r} of the zip archive is not a regular file")
                with zf.open(info) as src:
                    _copy_stream(src, dest_path)
        else:
            with tarfile.open(archive_path, "r:*") as tf:
                found = [m for m in tf.getmembers() if normalize_member(m.name) == want]
                if not found:
                    names = [normalize_member(m.name) for m in tf.getmembers() if m.isfile()]
                    raise InstallError(
                        f"member {member!r} not found in the tar archive; {_member_hint(names, want)} "
                        "(set member to the path of the virtiofsd binary inside the archive)"
                    )
                info = found[-1]
                if not info.isfile():
                    raise InstallError(
                        f"member {member!r} of the tar archive is not a regular file "
                        f"({'a link' if info.issym() or info.islnk() else 'type ' + repr(info.type)})"
                    )
                src = tf.extractfile(info)
                if src is None:  # pragma: no cover - isfile() members always have data
                    raise InstallError(f"member {member!r} of the tar archive has no data")
                with src:
                    _copy_stream(src, dest_path)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise InstallError(f"cannot read archive {archive_path}: {exc}") from None
    return kind


def safe_extract_tar(archive_path: str, dest_dir: str) -> None:
    """Extract a source tarball, refusing absolute paths, ``..`` and links leaving ``dest_dir``."""
    try:
        with tarfile.open(archive_path, "r:*") as tf:
            members = tf.getmembers()
            for m in members:
                name = normalize_member(m.name)
                if m.name.startswith("/") or name == ".." or name.startswith("../"):
                    raise InstallError(f"source archive member {m.name!r} points outside the archive")
                if m.issym() or m.islnk():
                    target = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
                    if m.islnk():
                        target = normalize_member(m.linkname)
                    if m.linkname.startswith("/") or target == ".." or target.startswith("../"):
                        raise InstallError(f"source archive link {m.name!r} points outside the archive")
                elif not (m.isfile() or m.isdir()):
                    raise InstallError(f"source archive member {m.name!r} is not a file or directory")
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest_dir, members=members, filter="data")
            else:  # pragma: no cover - Python without the extraction filters backport
                tf.extractall(dest_dir, members=members)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InstallError(f"cannot extract source archive {archive_path}: {exc}") from None
