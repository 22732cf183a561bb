# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The vhost-user descriptors libvirt picks the default virtiofsd from: one implementation.

Private module_utils: other collections must not import it.

Plain Python, no Ansible and no libvirt imports. Used by ``share_info`` (through
``vhost_user_fs_descriptor``) and by the ``virtiofsd`` module (``_install``: the
report of every descriptor), so both name the same daemon. The ``virtiofsd`` module's own
descriptor and masks (:class:`Registration`) are written here too, at the end of this file.

libvirt's rules, read in libvirt's source (github.com/libvirt/libvirt, commit ``71b19c4f``,
the 9.x code the lab runs; the same rules hold in the older 6.x copy of the file):

* Directories -- ``qemuInteropFetchConfigs`` in ``src/qemu/qemu_interop_config.c``:
  ``QEMU_DATADIR/vhost-user`` (``/usr/share/qemu/vhost-user``), then
  ``SYSCONFDIR/qemu/vhost-user`` (``/etc/qemu/vhost-user``), then, for session
  (unprivileged) daemons only, ``$XDG_CONFIG_HOME/qemu/vhost-user`` (``~/.config`` when
  ``XDG_CONFIG_HOME`` is unset). A directory that does not exist is skipped; one that cannot
  be opened for another reason fails the lookup.
* File names -- ``qemuBuildFileList``: every entry whose name does not start with ``.``; no
  extension is required (``50-foo`` counts like ``50-foo.json``). Each entry is ``stat()``-ed,
  following symlinks: anything but a regular file (a directory, say) is skipped, and an entry
  that cannot be ``stat()``-ed (a dangling symlink) fails the whole lookup.
* Precedence -- the files are collected in a table keyed by file name, directory by
  directory, so a file in a later directory replaces the same-named file of an earlier one.
* Masking -- after that, a file of length 0 is dropped: an empty file masks the same-named
  files of the earlier directories and is no descriptor itself. Only length 0 masks; a file
  holding white space is a (broken) JSON document.
* Order -- the remaining files are sorted by file name with ``strcmp`` (bytes, no locale; the
  directory plays no part): ``50-qemu-virtiofsd.json`` sorts before ``50-virtiofsd.json``.
* Parsing -- ``qemuVhostUserParse`` in ``src/qemu/qemu_vhost_user.c``: every remaining file
  is read (at most 1 MiB, ``DOCUMENT_SIZE``) and parsed as JSON, and its ``type`` must be one
  of the vhost-user types libvirt knows (:data:`TYPES`). One file that cannot be read, is not
  JSON or has an unknown type fails the whole lookup: libvirt then starts no default daemon
  at all, it does not go on to the next file.
* Selection -- ``qemuVhostUserFillDomainFS`` in the same file: the first descriptor of type
  ``fs`` in that order, whatever its ``binary``; none gives ``Unable to find a satisfying
  virtiofsd``. libvirt 9.x (commit ``71b19c4f``) takes it without running it. Newer libvirt
  runs ``BINARY --print-capabilities`` on each ``fs`` descriptor in turn
  (``qemuVhostUserFillFSCapabilities``) and skips the ones whose binary fails ("skip binaries
  that can't report their capabilities"; read in v12.4.0, commit ``eb0b2e768d22``,
  ``src/qemu/qemu_vhost_user.c`` around line 483). The first release with that probe is not
  recorded here (after 9.x; docs/reference.md dates the separate-options era at >= 10.6).
  :func:`lookup` models the newer rule when given ``probe``.

Checked against the installed libvirt 9.0.0 (Debian 12): a session daemon with
``$XDG_CONFIG_HOME/qemu/vhost-user`` and ``virsh domxml-to-native`` of a domain with a
vhost-user GPU (virtiofs itself is refused in session mode before 10.0; the GPU lookup reads
and parses the same files through the same functions). Its debug log listed the files in
``strcmp`` order (``10-Upper.json`` before ``10-noext``, no extension needed), left out dot
files and directories, and showed an empty ``50-qemu-virtiofsd.json`` in the session
directory replacing the ``/usr/share`` one with length 0; a broken file (``unable to parse
json file``), a file holding one space, an unknown type (``unknown vhost-user type``) and a
dangling symlink (``Unable to access``) each failed the lookup.
"""

from __future__ import annotations

import json
import os
import stat
import typing as t
from dataclasses import dataclass, field

from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import remove_file, render_json

DATA_DIR = "/usr/share/qemu/vhost-user"
CONF_DIR = "/etc/qemu/vhost-user"
#: The directories of a system (privileged) daemon, lowest priority first.
SYSTEM_DIRS = (DATA_DIR, CONF_DIR)
#: Largest descriptor libvirt reads (``DOCUMENT_SIZE`` in qemu_vhost_user.c).
DOCUMENT_SIZE = 1024 * 1024
#: vhost-user types libvirt accepts (``qemuVhostUserType`` in qemu_vhost_user.c).
TYPES = (
    "9p", "balloon", "block", "caif", "console", "crypto", "gpu", "input", "net", "rng", "rpmsg",
    "rproc-serial", "scsi", "vsock", "fs",
)
TYPE_FS = "fs"
NO_DAEMON = "Unable to find a satisfying virtiofsd"

#: The module that writes descriptors of its own and tags them (``tags`` is free-form in
#: QEMU's vhost-user schema): ``managed-by=<module>`` and one ``masks=<file name>`` per empty
#: mask file it owns.
MANAGER = "virtiofs.libvirt.virtiofsd"
MANAGED_TAG = f"managed-by={MANAGER}"
MASKS_TAG_PREFIX = "masks="

#: The descriptor the ``virtiofsd`` module writes: ``<vhost_user_dir>/<NN>-virtiofsd-rust.json``.
DEFAULT_VHOST_USER_PRIORITY = 40
DESCRIPTOR_SUFFIX = "-virtiofsd-rust.json"

#: ``probe(binary)`` returns ``None`` when ``binary --print-capabilities`` works, else why not.
ProbeCallable = t.Callable[[str], t.Optional[str]]


def search_dirs(privileged: bool = True, environ: t.Optional[t.Mapping[str, str]] = None) -> t.Tuple[str, ...]:
    """The directories libvirt reads, lowest priority first.

    ``privileged`` is true for the system daemon (``qemu:///system``); a session daemon also
    reads ``$XDG_CONFIG_HOME/qemu/vhost-user`` (``~/.config/qemu/vhost-user``).
    """
    if privileged:
        return SYSTEM_DIRS
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CONFIG_HOME")
    if xdg is None:
        xdg = os.path.join(os.path.expanduser("~"), ".config")
    return SYSTEM_DIRS + (f"{xdg}/qemu/vhost-user",)


@dataclass
class Descriptor:
    """One file in a vhost-user directory (``error`` says why libvirt cannot use it)."""

    path: str
    empty: bool = False
    data: t.Optional[t.Dict[str, t.Any]] = None
    error: t.Optional[str] = None
    #: libvirt cannot ``stat()`` the entry while listing its directory (a dangling symlink):
    #: that fails the lookup even when a later directory has a file of the same name
    listing_error: bool = False

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def directory(self) -> str:
        return os.path.dirname(self.path)

    def _string(self, key: str) -> t.Optional[str]:
        value = (self.data or {}).get(key)
        return value if isinstance(value, str) else None

    @property
    def type(self) -> t.Optional[str]:
        return self._string("type")

    @property
    def binary(self) -> t.Optional[str]:
        return self._string("binary")

    @property
    def description(self) -> t.Optional[str]:
        return self._string("description")

    @property
    def tags(self) -> t.List[str]:
        tags = (self.data or {}).get("tags")
        return [x for x in tags if isinstance(x, str)] if isinstance(tags, list) else []

    @property
    def managed(self) -> bool:
        return MANAGED_TAG in self.tags

    @property
    def masks(self) -> t.List[str]:
        return sorted(x[len(MASKS_TAG_PREFIX):] for x in self.tags if x.startswith(MASKS_TAG_PREFIX))


def read_descriptor(path: str) -> Descriptor:
    """Read one descriptor the way libvirt does (length 0 is a mask, see the module doc)."""
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        return Descriptor(path, error=f"cannot stat: {exc.strerror or exc}")
    if size == 0:
        return Descriptor(path, empty=True)
    if size > DOCUMENT_SIZE:
        return Descriptor(path, error=f"larger than {DOCUMENT_SIZE} bytes, libvirt does not read it")
    try:
        with open(path, "rb") as f:
            raw = f.read(DOCUMENT_SIZE + 1)
    except OSError as exc:
        return Descriptor(path, error=f"cannot read: {exc}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Descriptor(path, error=f"not JSON: {exc}")
    if not isinstance(data, dict):
        return Descriptor(path, error="not a JSON object")
    desc = Descriptor(path, data=data)
    if desc.type not in TYPES:
        desc.error = f"unknown vhost-user type {data.get('type')!r}"
    return desc


def _scan(dirs: t.Sequence[str]) -> t.Tuple[t.List[Descriptor], t.List[str]]:
    """Every descriptor file of ``dirs`` and the directory errors that fail libvirt's lookup."""
    found: t.List[Descriptor] = []
    errors: t.List[str] = []
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue
        except OSError as exc:
            errors.append(f"cannot open directory {d}: {exc.strerror or exc}")
            continue
        for name in names:
            if name.startswith("."):
                continue
            path = os.path.join(d, name)
            try:
                mode = os.stat(path).st_mode
            except OSError as exc:
                found.append(Descriptor(path, error=f"cannot stat: {exc.strerror or exc}", listing_error=True))
                continue
            if stat.S_ISREG(mode):
                found.append(read_descriptor(path))
    return found, errors


def scan_vhost_user(dirs: t.Sequence[str]) -> t.List[Descriptor]:
    """Every file libvirt looks at in ``dirs`` (lowest priority first), directory by directory
    in name order, masks and overridden files included."""
    return _scan(dirs)[0]


def effective_descriptors(descriptors: t.Sequence[Descriptor], dirs: t.Sequence[str]) -> t.Dict[str, t.Any]:
    """Apply libvirt's precedence, masking and order to ``descriptors`` of ``dirs``.

    Returns a dict:

    * ``by_path`` -- ``{path: {"masked_by" | "overridden_by": path}}`` for the files a
      same-named file of a later directory masks (empty) or replaces (non-empty);
    * ``active`` -- the descriptors libvirt parses, in its order (file name);
    * ``errors`` -- why libvirt fails the lookup (an active file it cannot parse, an entry it
      cannot ``stat()``); libvirt then picks no daemon at all;
    * ``selected`` -- the first active descriptor of type ``fs``: the one libvirt takes when
      ``errors`` is empty (:func:`lookup` applies that condition).
    """
    order = {d: i for i, d in enumerate(dirs)}
    by_name: t.Dict[str, t.List[Descriptor]] = {}
    for desc in descriptors:
        by_name.setdefault(desc.name, []).append(desc)
    notes: t.Dict[str, t.Dict[str, str]] = {}
    active: t.List[Descriptor] = []
    errors: t.List[str] = []
    # strcmp order: the bytes of the name (os.fsencode keeps undecodable names comparable)
    for name in sorted(by_name, key=os.fsencode):
        chain = sorted(by_name[name], key=lambda d: order.get(d.directory, -1))
        errors += [f"{d.path}: {d.error}" for d in chain if d.listing_error]
        top = chain[-1]
        for lower in chain[:-1]:
            notes[lower.path] = {"masked_by" if top.empty else "overridden_by": top.path}
        if top.empty:
            continue
        active.append(top)
        if top.error and not top.listing_error:
            errors.append(f"{top.path}: {top.error}")
    selected = next((d for d in active if d.type == TYPE_FS), None)
    return {"by_path": notes, "active": active, "errors": errors, "selected": selected}


@dataclass
class Lookup:
    """What libvirt does with the descriptors of ``dirs`` for a share without ``<binary path>``."""

    dirs: t.Tuple[str, ...]
    descriptors: t.List[Descriptor]
    by_path: t.Dict[str, t.Dict[str, str]]
    active: t.List[Descriptor]
    errors: t.List[str]
    #: the ``fs`` descriptor libvirt takes; ``None`` when the lookup fails (see :attr:`error`)
    selected: t.Optional[Descriptor] = None
    #: ``fs`` descriptors passed over because ``probe`` failed: ``(descriptor, why)``
    skipped: t.List[t.Tuple[Descriptor, str]] = field(default_factory=list)

    @property
    def error(self) -> t.Optional[str]:
        """Why libvirt starts no default daemon (``None`` when :attr:`selected` is set)."""
        if self.errors:
            return f"libvirt fails to read the vhost-user descriptors: {'; '.join(self.errors)}"
        if self.selected is None:
            return f"{NO_DAEMON}: no usable vhost-user descriptor of type fs in {', '.join(self.dirs)}"
        if self.selected.binary is None:
            return f"{NO_DAEMON}: {self.selected.path} has type fs but no binary"
        return None


def lookup(dirs: t.Sequence[str] = SYSTEM_DIRS, probe: t.Optional[ProbeCallable] = None) -> Lookup:
    """Find the daemon libvirt starts for a share without ``<binary path>``.

    ``dirs`` lowest priority first (:func:`search_dirs`). Without ``probe``: libvirt 9.x's
    rule, the first ``fs`` descriptor. With ``probe``: the newer rule, the first ``fs``
    descriptor whose binary passes ``probe`` (one without a binary cannot).
    """
    dirs = tuple(os.fspath(d) for d in dirs)
    descriptors, dir_errors = _scan(dirs)
    eff = effective_descriptors(descriptors, dirs)
    found = Lookup(dirs, descriptors, eff["by_path"], eff["active"], dir_errors + eff["errors"])
    if found.errors:
        return found
    for desc in found.active:
        if desc.type != TYPE_FS:
            continue
        if probe is not None:
            why = probe(desc.binary) if desc.binary is not None else "no binary"
            if why is not None:
                found.skipped.append((desc, why))
                continue
        found.selected = desc
        break
    return found


def vhost_user_fs_descriptor(dirs: t.Sequence[str] = SYSTEM_DIRS) -> t.Optional[t.Dict[str, t.Any]]:
    """The vhost-user ``fs`` descriptor libvirt uses when a share has no ``<binary path>``.

    ``dirs`` lowest priority first; libvirt's rules are above. ``None`` when
    libvirt would find no daemon there, or fail to read the descriptors at all.
    """
    found = lookup(dirs).selected
    if found is None or found.binary is None:
        return None
    return {"descriptor": found.path, "binary": found.binary, "description": found.description}


# ---------------------------------------------------------------------------- registration
# The ``virtiofsd`` module's own descriptor and the masks it owns (``register_vhost_user``,
# ``mask_legacy``).

def descriptor_name(priority: int) -> str:
    return f"{int(priority):02d}{DESCRIPTOR_SUFFIX}"


def render_descriptor(binary: str, features: t.Sequence[str], masks: t.Sequence[str]) -> str:
    """A vhost-user descriptor for ``binary``; ``tags`` (free-form in QEMU's schema) mark it
    as ours and record the masks it owns."""
    tags = [MANAGED_TAG] + [f"{MASKS_TAG_PREFIX}{m}" for m in sorted(masks)]
    return render_json({
        "description": f"Rust virtiofsd (managed by {MANAGER})",
        "type": "fs",
        "binary": binary,
        "features": list(features),
        "tags": tags,
    })


#: ``act(text)`` records one change (and marks the run changed).
ActCallable = t.Callable[[str], None]


@dataclass
class Registration:
    """Our descriptor and masks in ``vhost_user_dir``; what touches the system comes in as callables.

    * ``is_legacy_c(binary) -> bool``: the binary runs and is the legacy C virtiofsd
    * ``write(path, content, mode)``: replace a file atomically (root-owned)
    * ``set_attrs(path, mode) -> changed``: owner/group root and mode, check-mode aware
    * ``warn(msg)``
    """

    vhost_user_dir: str
    system_dirs: t.Sequence[str]
    check_mode: bool
    is_legacy_c: t.Callable[[str], bool]
    write: t.Callable[[str, str, int], None]
    set_attrs: t.Callable[[str, int], bool]
    warn: t.Callable[[str], None]

    def managed_descriptors(self, binaries: t.Optional[t.Sequence[str]] = None) -> t.List[Descriptor]:
        found = []
        for d in scan_vhost_user([self.vhost_user_dir]):
            if d.managed and (binaries is None or d.binary in binaries):
                found.append(d)
        return found

    def wanted_masks(self, previous: t.Sequence[str]) -> t.List[str]:
        """Names of legacy C descriptors (in lower-priority dirs) to mask in vhost_user_dir."""
        masks = []
        for d in scan_vhost_user([x for x in self.system_dirs if x != self.vhost_user_dir]):
            if d.empty or d.type != "fs" or not d.binary or not os.path.exists(d.binary):
                continue
            if not self.is_legacy_c(d.binary):
                continue
            target = os.path.join(self.vhost_user_dir, d.name)
            if os.path.exists(target):
                mine = d.name in previous and os.path.getsize(target) == 0
                if not mine:
                    if os.path.getsize(target) != 0:
                        self.warn(f"{target} overrides {d.path}; not masking it")
                    continue
            masks.append(d.name)
        return sorted(set(masks))

    def ensure(self, act: ActCallable, path: str, features: t.Optional[t.Sequence[str]], register: bool,
               priority: int, mask_legacy: bool) -> t.Tuple[t.Optional[str], t.List[str]]:
        """Register ``path`` (or unregister it when ``register`` is false); ``features`` is
        ``None`` when the daemon's capabilities are not known (check mode before an install).
        Returns ``(descriptor, masks)``."""
        mine = self.managed_descriptors([path])
        previous_masks = sorted({m for d in mine for m in d.masks})
        if not register:
            self.unregister(act, mine)
            return None, []
        name = descriptor_name(priority)
        target = os.path.join(self.vhost_user_dir, name)
        masks = self.wanted_masks(previous_masks) if mask_legacy else []
        # Our descriptors under another priority (or for another binary of ours) go away.
        for d in mine:
            if d.path != target:
                act(f"remove vhost-user descriptor {d.path}")
                if not self.check_mode:
                    remove_file(d.path)
        for m in previous_masks:
            if m not in masks:
                self.remove_mask(act, m)
        if not self.check_mode and not os.path.isdir(self.vhost_user_dir):
            os.makedirs(self.vhost_user_dir, mode=0o755)
        for m in masks:
            mpath = os.path.join(self.vhost_user_dir, m)
            if not os.path.exists(mpath):
                act(f"mask legacy vhost-user descriptor {m} with an empty {mpath}")
                if not self.check_mode:
                    self.write(mpath, "", 0o644)
        current = read_descriptor(target) if os.path.exists(target) else None
        if features is None:
            if current is None or current.binary != path:
                act(f"write vhost-user descriptor {target} -> {path}")
            return target, masks
        content = render_descriptor(path, features, masks)
        if current is None or current.data != json.loads(content):
            act(f"write vhost-user descriptor {target} -> {path}")
            if not self.check_mode:
                self.write(target, content, 0o644)
        elif self.set_attrs(target, 0o644):
            act(f"set owner root and mode 0644 on {target}")
        return target, masks

    def remove_mask(self, act: ActCallable, name: str) -> None:
        mpath = os.path.join(self.vhost_user_dir, name)
        if os.path.exists(mpath) and os.path.getsize(mpath) == 0:
            act(f"remove mask {mpath}")
            if not self.check_mode:
                remove_file(mpath)

    def unregister(self, act: ActCallable, descriptors: t.Sequence[Descriptor]) -> None:
        for d in descriptors:
            for m in d.masks:
                self.remove_mask(act, m)
            act(f"remove vhost-user descriptor {d.path}")
            if not self.check_mode:
                remove_file(d.path)
