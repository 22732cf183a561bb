# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Facts about a virtiofsd binary, read from the daemon's own output.

Private module_utils: other collections must not import it.

Plain Python, no Ansible imports. Everything that runs a process takes a ``run`` callable
``run(argv: list[str]) -> (rc: int, stdout: str, stderr: str)``; modules pass
``module.run_command`` (its signature matches), tests pass a real subprocess runner.

Public API (stable):

* :class:`VirtiofsdError` -- raised for output that cannot be understood.
* :class:`DaemonVersion` / :func:`parse_version_output` -- ``--version`` output.
* :func:`parse_help_options` -- long option names (``--cache``, ...) from ``--help`` output.
* :func:`parse_capabilities` -- ``--print-capabilities`` JSON.
* :class:`DaemonInfo` / :func:`probe_daemon` -- run all three and bundle the facts.
* :func:`probe_version` / :func:`probe_capabilities` -- run one probe (used by self-tests).
* :func:`rust_daemon_problem` -- why a probed binary is not the Rust daemon the collection
  installs and wraps (the one rule for the virtiofsd and virtiofsd_wrapper modules);
  :func:`check_daemon` raises it with the caller's fix.
* :func:`short_output` -- a command's output cut for an error message.
"""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import (
    VersionError,
    format_version,
    parse_version,
    satisfies,
)

IMPL_RUST = "rust"
IMPL_C = "c"

RunCallable = t.Callable[[t.List[str]], t.Tuple[int, str, str]]

# Rust (clap): exactly "virtiofsd 1.13.2" or a dev build "virtiofsd 1.8.0-dirty".
_RUST_VERSION_RE = re.compile(r"^virtiofsd (\d+\.\d+\.\d+)(-\S+)?$")
# C (QEMU <= 7.2): "virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)".
_C_VERSION_RE = re.compile(r"^virtiofsd version (\d+(?:\.\d+){0,2})(?:\S*)(?:\s+\((.*)\))?\s*$")
# An option definition line in --help output: optional short option, then the long one.
# clap 4 indents options by 2 or 6 spaces, clap 2/structopt (< 1.7.1) by 8, the C daemon by
# 4; description lines are indented further, so they are not mistaken for definitions.
_HELP_OPTION_RE = re.compile(r"^[ \t]{0,8}(?:-[A-Za-z0-9](?:,[ \t]*|[ \t]+))?(--[A-Za-z0-9][A-Za-z0-9_-]*)")


class VirtiofsdError(Exception):
    """Output of a virtiofsd binary that cannot be understood, or a probe that failed."""


class _Implementation:
    """What DaemonVersion and DaemonInfo both answer from ``implementation`` and ``version``."""

    implementation: t.Optional[str]
    version: t.Optional[t.Tuple[int, int, int]]

    @property
    def is_rust(self) -> bool:
        return self.implementation == IMPL_RUST

    @property
    def is_c(self) -> bool:
        return self.implementation == IMPL_C

    @property
    def version_string(self) -> t.Optional[str]:
        """``"1.13.2"`` (without suffix), or ``None``."""
        return format_version(self.version) if self.version is not None else None


@dataclass(frozen=True)
class DaemonVersion(_Implementation):
    """Parsed ``virtiofsd --version`` output.

    ``implementation`` is ``"rust"``, ``"c"`` or ``None`` (not recognised); ``version`` is a
    3-tuple (``None`` when not recognised); ``raw`` is the first non-empty output line;
    ``suffix`` is a Rust build suffix such as ``-dirty`` (``""`` otherwise); ``build`` is the
    distribution string in parentheses of the C daemon (``""`` otherwise).
    """

    implementation: t.Optional[str]
    version: t.Optional[t.Tuple[int, int, int]]
    raw: str
    suffix: str = ""
    build: str = ""


def parse_version_output(text: str) -> DaemonVersion:
    """Parse the output of ``virtiofsd --version``; never raises.

    Only the first non-empty line is looked at (the C daemon prints three lines).
    Unknown output gives ``DaemonVersion(None, None, raw)``.
    """
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    first = lines[0] if lines else ""
    m = _RUST_VERSION_RE.match(first)
    if m:
        return DaemonVersion(IMPL_RUST, parse_version(m.group(1)), first, suffix=m.group(2) or "")
    m = _C_VERSION_RE.match(first)
    if m:
        try:
            version: t.Optional[t.Tuple[int, int, int]] = parse_version(m.group(1))
        except VersionError:  # pragma: no cover - the regex only lets digits through
            version = None
        return DaemonVersion(IMPL_C, version, first, build=m.group(2) or "")
    return DaemonVersion(None, None, first)


def parse_help_options(text: str) -> t.Set[str]:
    """Return the long option names (with the leading ``--``) defined in ``--help`` output.

    Works for clap 4 (Rust >= 1.7.1), clap 2/structopt (Rust < 1.7.1) and the C daemon.
    Options mentioned inside descriptions are not returned. ``-o`` compat items are not
    long options and are not returned.
    """
    options: t.Set[str] = set()
    for line in (text or "").splitlines():
        m = _HELP_OPTION_RE.match(line)
        if m:
            options.add(m.group(1))
    return options


def parse_capabilities(text: str) -> t.Dict[str, t.Any]:
    """Parse ``--print-capabilities`` output: a JSON object with ``type: fs``.

    Returns the object with ``features`` normalised to a list of strings (``[]`` when
    absent). Raises :class:`VirtiofsdError` for anything else: stdout must be JSON only,
    which is exactly what libvirt requires of a wrapper.
    """
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise VirtiofsdError(f"--print-capabilities did not print JSON ({exc}): {short_output(text)!r}") from None
    if not isinstance(data, dict):
        raise VirtiofsdError(f"--print-capabilities printed JSON that is not an object: {short_output(text)!r}")
    if data.get("type") != "fs":
        raise VirtiofsdError(
            f"--print-capabilities printed type {data.get('type')!r}, expected 'fs': {short_output(text)!r}"
        )
    features = data.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise VirtiofsdError(f"--print-capabilities 'features' is not a list of strings: {features!r}")
    result = dict(data)
    result["features"] = list(features)
    return result


@dataclass
class DaemonInfo(_Implementation):
    """Facts about one virtiofsd binary, as reported by the binary itself."""

    path: str
    implementation: t.Optional[str]
    version: t.Optional[t.Tuple[int, int, int]]
    version_raw: str
    capabilities: t.Optional[t.Dict[str, t.Any]] = None
    capabilities_error: t.Optional[str] = None
    supported_options: t.Set[str] = field(default_factory=set)

    @property
    def features(self) -> t.List[str]:
        return list((self.capabilities or {}).get("features", []))

    def supports_option(self, long_option: str) -> bool:
        """True when ``--help`` listed ``long_option`` (``"--cache"`` or ``"cache"``)."""
        name = long_option if long_option.startswith("--") else f"--{long_option}"
        return name in self.supported_options

    def to_dict(self) -> t.Dict[str, t.Any]:
        """JSON-friendly form for module return values."""
        return {
            "path": self.path,
            "implementation": self.implementation,
            "version": self.version_string,
            "version_raw": self.version_raw,
            "capabilities": self.capabilities,
            "features": self.features,
            "supported_options": sorted(self.supported_options),
        }


def short_output(text: t.Any, limit: int = 400) -> str:
    """``text`` stripped and cut to ``limit`` characters (``...`` marks a cut), for messages."""
    text = "" if text is None else str(text)
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def rust_daemon_problem(info: DaemonInfo, what: str, version: t.Optional[str] = None) -> t.Optional[str]:
    """Why ``info`` is not a Rust virtiofsd with a version (satisfying ``version``), or ``None``.

    ``what`` names the binary in the message (``"binary /usr/lib/qemu/virtiofsd"``). The legacy
    C daemon answers ``--version`` and ``--print-capabilities`` but fails at start on the Rust
    daemon's options (``fuse: unknown option(s)``), so it is refused outright.
    """
    if info.is_c:
        return (
            f"{what} is not the Rust virtiofsd: it is the legacy C virtiofsd of QEMU <= 7.2 "
            f"({info.version_raw!r}), which rejects the Rust daemon's options at start ('fuse: unknown option(s)')"
        )
    if not info.is_rust or info.version is None:
        return f"{what} is not a recognised Rust virtiofsd: --version printed {info.version_raw!r}"
    if version and not satisfies(info.version, version):
        return f"{what} is virtiofsd {info.version_string}, which does not satisfy version {version!r}"
    return None


def check_daemon(info: DaemonInfo, what: str, version: t.Optional[str] = None, *, fix: str = "",
                 error: t.Type[Exception] = VirtiofsdError) -> None:
    """Refuse anything but a Rust virtiofsd (satisfying ``version``): raise ``error`` with the
    :func:`rust_daemon_problem` message followed by ``fix`` (what the caller's user should do).

    The one check both the installer (``_install``) and the wrapper (``_wrapper``) use.
    """
    problem = rust_daemon_problem(info, what, version)
    if problem:
        raise error(f"{problem}{fix}")


def _run(run: RunCallable, argv: t.List[str]) -> t.Tuple[int, str, str]:
    try:
        rc, out, err = run(argv)
    except OSError as exc:
        raise VirtiofsdError(f"cannot run {' '.join(argv)}: {exc}") from None
    return rc, out or "", err or ""


def probe_version(path: str, run: RunCallable) -> DaemonVersion:
    """Run ``path --version``; raise :class:`VirtiofsdError` unless it exits 0."""
    rc, out, err = _run(run, [path, "--version"])
    if rc != 0:
        raise VirtiofsdError(f"{path} --version failed with rc {rc}: {short_output(err or out)}")
    return parse_version_output(out)


def probe_capabilities(path: str, run: RunCallable) -> t.Dict[str, t.Any]:
    """Run ``path --print-capabilities`` (the exact probe libvirt runs) and parse it."""
    rc, out, err = _run(run, [path, "--print-capabilities"])
    if rc != 0:
        raise VirtiofsdError(f"{path} --print-capabilities failed with rc {rc}: {short_output(err or out)}")
    return parse_capabilities(out)


def probe_help(path: str, run: RunCallable) -> t.Set[str]:
    """Run ``path --help`` and return its long options (see :func:`parse_help_options`)."""
    rc, out, err = _run(run, [path, "--help"])
    if rc != 0:
        raise VirtiofsdError(f"{path} --help failed with rc {rc}: {short_output(err or out)}")
    # clap prints help on stdout; be lenient with builds that print it on stderr.
    return parse_help_options(out or err)


def probe_daemon(path: str, run: RunCallable) -> DaemonInfo:
    """Run ``--version``, ``--help`` and ``--print-capabilities`` on ``path``.

    ``--version`` and ``--help`` must succeed (:class:`VirtiofsdError` otherwise). A failing
    or malformed ``--print-capabilities`` does not raise: ``capabilities`` is then ``None``
    and ``capabilities_error`` says why (Rust virtiofsd before 1.11.1 may want more
    arguments there; callers that need capabilities check the field).
    """
    ver = probe_version(path, run)
    if ver.implementation is None:
        raise VirtiofsdError(
            f"{path} does not look like virtiofsd: --version printed {ver.raw!r} "
            "(expected 'virtiofsd X.Y.Z' for the Rust daemon or 'virtiofsd version X.Y' for the C one)"
        )
    options = probe_help(path, run)
    caps: t.Optional[t.Dict[str, t.Any]] = None
    caps_error: t.Optional[str] = None
    try:
        caps = probe_capabilities(path, run)
    except VirtiofsdError as exc:
        caps_error = str(exc)
    return DaemonInfo(
        path=path,
        implementation=ver.implementation,
        version=ver.version,
        version_raw=ver.raw,
        capabilities=caps,
        capabilities_error=caps_error,
        supported_options=options,
    )
