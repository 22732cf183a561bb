#!/usr/bin/python
# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: share
short_description: Add, change and remove virtio-fs shares of a libvirt domain
version_added: 0.1.0
description:
  - Adds, changes and removes one or many virtio-fs shares (C(<filesystem>) devices with C(<driver type='virtiofs'/>))
    of an existing libvirt domain, or of a domain XML file on disk, and touches nothing else.
  - A share is identified by its tag (libvirt's C(<target dir>)). Only that C(<filesystem>) element and the
    C(<source>)/C(<access>) children of C(<memoryBacking>) are ever written; metadata, other namespaces, other devices
    and their order stay as they are.
  - Whether something changes is decided by comparing the share semantically with the inactive definition libvirt
    has (ignoring C(<address>), C(<alias>), attribute order, quoting, whitespace and the defaults libvirt adds, such as
    C(type='mount') and C(accessmode='passthrough')). A run without a change does not define the domain.
  - A share describes the whole C(<filesystem>); options that are not given are removed from an existing share (the
    libvirt or daemon default then applies). C(<address>), C(<alias>) and C(<boot>) of an existing share are kept.
  - After a define the inactive definition is read back; if libvirt dropped or rewrote an option the module fails
    with the difference instead of reporting success. The define uses C(VIR_DOMAIN_DEFINE_VALIDATE) when the
    current definition passes libvirt's schema, otherwise a plain define (many real definitions do not validate).
  - C(<lock>) is never written (the Rust virtiofsd rejects locking options). A C(<lock>) on a managed share is
    removed with a warning; one on any other share is reported in a warning.
  - Concurrent runs on the same host that patch the same domain are serialised with a lock file, and the
    definition is read again right before each define, so neither run loses its shares.
author:
  - virtiofs.libvirt contributors (@virtiofs-libvirt)
requirements:
  - lxml on the managed host
  - libvirt-python on the managed host (not needed with O(xml_file))
  - libvirt >= 6.2.0 (virtio-fs); see the options for newer requirements
notes:
  - Each XML feature is checked against the host's libvirt version before anything is written; asking for one
    the host cannot do fails and names the feature, the libvirt version it needs and the host's version.
    O(sandbox) needs libvirt >= 7.2.0, O(thread_pool_size) libvirt >= 8.5.0, O(idmap) libvirt >= 10.0.0,
    O(openfiles) libvirt >= 10.6.0, O(readonly=true) libvirt >= 11.0.0 (and virtiofsd >= 1.13.0), C(memfd)
    shared memory without NUMA cells libvirt >= 6.9.0.
  - With O(xml_file) the host's libvirt version is not known, so no version checks are made.
  - Changes of C(<memoryBacking>) only take effect after a full stop and start of the domain (not a guest reboot).
  - "Errors, each with the domain definition left exactly as it was: unknown domain; tag empty, longer than
    36 bytes or given twice; a 9p or other C(<filesystem>) already using the tag; relative or missing O(source)
    (unless O(create_source=true)); O(binary_path) not absolute or not executable; feature too new for the host's
    libvirt; libvirt unreachable; malformed O(xml_file); NUMA cells with C(memAccess='private'); a transient domain."
seealso:
  - module: virtiofs.libvirt.share_info
  - module: community.libvirt.virt
  - module: ansible.posix.mount
    description: Mount the tag in the guest (fstype C(virtiofs)).
  - name: libvirt domain XML, filesystems
    description: What the C(<filesystem>) elements mean.
    link: https://libvirt.org/formatdomain.html#filesystems
  - name: Sharing files with virtio-fs
    description: libvirt's virtio-fs guide.
    link: https://libvirt.org/kbase/virtiofs.html
extends_documentation_fragment:
  - virtiofs.libvirt._attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode computes the same patch and returns the same RV(changed), RV(diff) and RV(actions) as a real run,
        without defining, attaching or creating anything.
  diff_mode:
    support: full
    details:
      - The diff is the inactive domain definition (or O(xml_file)) before and after the patch.
  idempotent:
    support: full
options:
  domain:
    description:
      - Name or UUID of an existing domain to patch (its persistent definition).
      - Exactly one of O(domain) and O(xml_file) is required.
    type: str
    aliases: [name]
  uri:
    description:
      - libvirt connection URI used with O(domain).
    type: str
    default: qemu:///system
  xml_file:
    description:
      - A domain XML file on the managed host to patch in place instead of a defined domain, for example a
        templated definition before it is defined. The file is replaced atomically and keeps its owner and mode;
        a symbolic link is followed (its target is replaced, the link stays).
      - No libvirt is needed, and no libvirt version checks are made.
    type: path
  tag:
    description:
      - "The mount tag of a single share (libvirt C(<target dir>)), 1 to 36 bytes of C(A-Z a-z 0-9 . _ : @ + = / -)
        (the guest writes it into C(/etc/fstab); the rule is the filter P(virtiofs.libvirt.tag_error#filter)). The
        guest mounts it with C(mount -t virtiofs TAG /mnt)."
      - A share with O(state=absent) may have any tag an older definition carries.
      - Exactly one of O(tag) and O(shares) is required.
    type: str
  source:
    description:
      - Absolute path of the host directory to share (C(<source dir>)). Required with O(state=present).
      - It must exist unless O(create_source=true).
    type: path
  state:
    description:
      - V(present) adds or updates the share, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  binary_path:
    description:
      - Absolute path of the daemon (or wrapper script) libvirt runs for this share (C(<binary path>)); must be
        executable on the host.
      - When not set libvirt picks a daemon from the vhost-user descriptors in C(/etc/qemu/vhost-user) and
        C(/usr/share/qemu/vhost-user); on Debian 12 that is the legacy C daemon of QEMU.
    type: path
  readonly:
    description:
      - Export the directory read-only (C(<readonly/>)). Needs libvirt >= 11.0.0 and virtiofsd >= 1.13.0.
      - When not set or V(false) the share is read-write.
    type: bool
  cache:
    description:
      - Daemon cache mode (C(<cache mode>)); libvirt knows only these two values. When not set the daemon
        default (C(auto)) applies.
    type: str
    choices: [none, always]
  sandbox:
    description:
      - Daemon sandbox mode (C(<sandbox mode>)). Needs libvirt >= 7.2.0.
    type: str
    choices: [namespace, chroot]
  xattr:
    description:
      - Extended attribute support (C(<binary xattr>)).
    type: bool
  thread_pool_size:
    description:
      - Size of the daemon's thread pool (C(<thread_pool size>)), V(0) disables the pool. Needs libvirt >= 8.5.0.
    type: int
  openfiles:
    description:
      - Maximum number of open files of the daemon (C(<openfiles max>)). Needs libvirt >= 10.6.0.
    type: int
  queue_size:
    description:
      - Virtqueue size (C(<driver queue>)), for example V(1024).
    type: int
  idmap:
    description:
      - User and group id mapping (C(<idmap>)). Needs libvirt >= 10.0.0.
    type: dict
    suboptions:
      uid:
        description: User id ranges.
        type: list
        elements: dict
        suboptions: &idrange
          start:
            description: First id in the guest.
            type: int
            required: true
          target:
            description: First id on the host.
            type: int
            required: true
          count:
            description: Number of ids.
            type: int
            required: true
      gid:
        description: Group id ranges.
        type: list
        elements: dict
        suboptions: *idrange
  ats:
    description:
      - Address translation services of the virtio device (C(<driver ats>)).
    type: bool
  iommu:
    description:
      - Use the platform IOMMU for the virtio device (C(<driver iommu>)).
    type: bool
  packed:
    description:
      - Packed virtqueues (C(<driver packed>)). Needs libvirt >= 6.3.0.
    type: bool
  shares:
    description:
      - Several shares in one call, each with the same options as the single-share options above (O(tag) required).
        The definition is written once for the whole list.
      - Exactly one of O(tag) and O(shares) is required; the single-share options cannot be combined with O(shares).
    type: list
    elements: dict
    suboptions:
      tag:
        description: Mount tag, see O(tag).
        type: str
        required: true
      source:
        description: Host directory, see O(source).
        type: path
      state:
        description: See O(state).
        type: str
        choices: [present, absent]
        default: present
      binary_path:
        description: See O(binary_path).
        type: path
      readonly:
        description: See O(readonly).
        type: bool
      cache:
        description: See O(cache).
        type: str
        choices: [none, always]
      sandbox:
        description: See O(sandbox).
        type: str
        choices: [namespace, chroot]
      xattr:
        description: See O(xattr).
        type: bool
      thread_pool_size:
        description: See O(thread_pool_size).
        type: int
      openfiles:
        description: See O(openfiles).
        type: int
      queue_size:
        description: See O(queue_size).
        type: int
      idmap:
        description: See O(idmap).
        type: dict
        suboptions:
          uid:
            description: User id ranges.
            type: list
            elements: dict
            suboptions: *idrange
          gid:
            description: Group id ranges.
            type: list
            elements: dict
            suboptions: *idrange
      ats:
        description: See O(ats).
        type: bool
      iommu:
        description: See O(iommu).
        type: bool
      packed:
        description: See O(packed).
        type: bool
      create_source:
        description: Create this share's missing source directory; defaults to O(create_source).
        type: bool
      owner:
        description: Owner of this share's source directory when it is created; defaults to O(owner).
        type: str
      group:
        description: Group of this share's source directory when it is created; defaults to O(group).
        type: str
      mode:
        description: Mode of this share's source directory when it is created; defaults to O(mode).
        type: raw
  exclusive:
    description:
      - Remove every virtio-fs share of the domain whose tag is not listed in O(shares) (or O(tag)). Other
        C(<filesystem>) devices (9p) are never removed.
    type: bool
    default: false
  memory_backing:
    description:
      - V(auto) makes sure the domain has the shared memory virtio-fs needs whenever a share is present. It adds
        C(<memoryBacking><source type='memfd'/><access mode='shared'/>) unless the domain already has an equivalent
        (hugepages or file backing with C(access mode='shared'), or NUMA cells that all have C(memAccess='shared'));
        with hugepages but no shared access it adds only C(<access mode='shared'/>), never memfd. C(<numa>) is never
        changed; a cell with C(memAccess='private') is an error.
      - V(skip) leaves C(<memoryBacking>) alone (libvirt then refuses a share without shared memory).
      - Shared memory is kept when the last share is removed.
    type: str
    choices: [auto, skip]
    default: auto
  live:
    description:
      - V(false) changes the persistent definition only; when the domain runs and its running configuration now
        differs, RV(restart_required) is V(true).
      - V(true) or V(auto) also attach new shares to, and detach removed shares from, the running domain when libvirt
        can. When it cannot (for example no free PCI slot, no shared memory active in the running guest, or an
        option of an existing share changed), RV(restart_reasons) says why and RV(restart_required) is V(true).
        V(true) also emits a warning then, V(auto) does not.
      - Hot-unplug needs the guest to release the device; unmount the tag in the guest first.
    type: str
    choices: ['false', 'true', auto]
    default: 'false'
  backup:
    description:
      - Save the definition before changing it and return its path in RV(backup_file).
      - With O(domain) the inactive XML is written to a timestamped file in O(backup_dir); with O(xml_file) a
        timestamped copy is made next to the file.
    type: bool
    default: false
  backup_dir:
    description:
      - Directory for backups of domain definitions (O(backup=true) with O(domain)); created when missing.
    type: path
    default: /var/lib/virtiofs-libvirt/backups
  create_source:
    description:
      - Create missing O(source) directories (with parents) instead of failing; O(owner), O(group) and O(mode)
        apply to the source directory itself. Entries of O(shares) can set their own C(create_source), C(owner),
        C(group) and C(mode).
      - An unknown O(owner) or O(group) or a malformed O(mode) is an error before anything is created (also in check
        mode). Directories are created just before the definition is written; when the run fails before the
        definition is written they are removed again (as long as they are still empty). Check mode reports them in
        RV(actions).
    type: bool
    default: false
  owner:
    description:
      - Owner of source directories created by O(create_source=true).
    type: str
  group:
    description:
      - Group of source directories created by O(create_source=true).
    type: str
  mode:
    description:
      - Mode of source directories created by O(create_source=true), for example V('0755').
    type: raw
  pending_binaries:
    description:
      - Check mode only. Paths that an earlier task of the same run installs (a wrapper or the daemon, for example
        what M(virtiofs.libvirt.virtiofsd_wrapper) would write). A O(binary_path) in this list that does not exist
        yet is not an error in check mode, so the prediction covers a first run; a real run always requires the
        file.
    type: list
    elements: path
    default: []
  changed_binaries:
    description:
      - Daemons or wrappers that changed in this run (new options in a wrapper, a new virtiofsd). A running domain
        whose running configuration starts one of them for a share keeps the old daemon process until it is shut
        down and started, so RV(restart_required) becomes V(true) with a reason naming the share and the path.
      - The role R(virtiofs.libvirt.host,ansible_collections.virtiofs.libvirt.host_role) passes the wrappers and
        the daemon it changed.
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
---
- name: Share /srv/projects with the guest web01 as tag "projects"
  virtiofs.libvirt.share:
    domain: web01
    tag: projects
    source: /srv/projects
    binary_path: /opt/virtiofsd-rust/virtiofsd.sh
    cache: always
    sandbox: chroot
  register: share

- name: Tell the user that the running guest needs a full stop and start
  ansible.builtin.debug:
    msg: "{{ share.restart_reasons }}"
  when: share.restart_required

- name: Exactly these two shares, written in one define, attached live where possible
  virtiofs.libvirt.share:
    domain: 1b7e3c4a-8d52-4f6e-9a0b-2c1d3e4f5a6b
    exclusive: true
    live: auto
    shares:
      - tag: data
        source: /srv/data
        binary_path: /opt/virtiofsd-rust/virtiofsd.sh
        thread_pool_size: 4
      - tag: logs
        source: /var/log/guests/web01
        cache: none

- name: Remove a share
  virtiofs.libvirt.share:
    domain: web01
    tag: projects
    state: absent

- name: Patch a templated definition before defining it (no libvirt needed)
  virtiofs.libvirt.share:
    xml_file: /var/tmp/ci-guest.xml
    tag: workspace
    source: /srv/ci/workspace
    create_source: true
    owner: root
    mode: "0755"
    backup: true
"""

RETURN = r"""
changed:
  description: Whether the definition (or the file, the running domain, or a source directory) was changed.
  returned: always
  type: bool
  sample: true
diff:
  description: The inactive definition before and after, shown as a unified diff in diff mode.
  returned: when diff mode is on
  type: dict
  contains:
    before:
      description: Definition before the change.
      type: str
    after:
      description: Definition after the change.
      type: str
actions:
  description: What was done (or would be done in check mode), one human-readable line per step.
  returned: always
  type: list
  elements: str
  sample: ["add share 'projects' (source /srv/projects)", "add <memoryBacking><source type='memfd'/> (shared memory for virtio-fs)"]
restart_required:
  description:
    - Whether the running domain differs from its new definition in a way that needs a full stop and start.
    - Always V(false) for domains that are not running and with O(xml_file).
  returned: always
  type: bool
  sample: true
restart_reasons:
  description: Why RV(restart_required) is V(true).
  returned: always
  type: list
  elements: str
  sample: ["memoryBacking changes need a full stop and start of the domain"]
shares:
  description: The virtio-fs shares of the resulting definition (all of them, not only the managed ones).
  returned: always
  type: list
  elements: dict
  sample:
    - tag: projects
      source: /srv/projects
      source_socket: null
      binary_path: /opt/virtiofsd-rust/virtiofsd.sh
      readonly: false
      cache: always
      sandbox: chroot
      xattr: null
      thread_pool_size: null
      openfiles: null
      queue_size: null
      idmap: null
      ats: null
      iommu: null
      packed: null
      lock: null
      alias: null
      boot_order: null
memory_backing:
  description: Shared memory summary of the definition before and after.
  returned: always
  type: dict
  contains:
    before:
      description: Before the change.
      type: dict
    after:
      description: After the change.
      type: dict
  sample:
    before: {shared: false, source: null, access: null, hugepages: false, numa_cells: 0, numa_shared_cells: 0, numa_private_cells: []}
    after: {shared: true, source: memfd, access: shared, hugepages: false, numa_cells: 0, numa_shared_cells: 0, numa_private_cells: []}
backup_file:
  description: Path of the saved definition.
  returned: when O(backup=true) and the definition was changed
  type: str
  sample: /var/lib/virtiofs-libvirt/backups/web01-20250101T120000.123456.xml
libvirt_version:
  description: Version of the host's libvirt (V(null) with O(xml_file)).
  returned: always
  type: str
  sample: 9.0.0
domain:
  description: Name and UUID of the patched domain (from the definition).
  returned: always
  type: dict
  sample: {name: web01, uuid: 1b7e3c4a-8d52-4f6e-9a0b-2c1d3e4f5a6b}
defined_with_validation:
  description: Whether the define used C(VIR_DOMAIN_DEFINE_VALIDATE) (V(null) when nothing was defined).
  returned: always
  type: bool
  sample: true
"""

import datetime
import grp
import os
import pwd
import re
import tempfile
import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import (
    CACHE_MODES,
    MANAGED_KEYS,
    MEMORY_BACKING_MODES,
    SANDBOX_MODES,
    STATES,
    DomainXML,
    DomainXMLError,
    ShareSpec,
    apply_shares,
    element_to_string,
    share_to_dict,
    validate_specs,
    verify_converged,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt import (
    Connection,
    LibvirtAdapterError,
    domain_lock,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt_features import (
    LibvirtFeatureError,
    check_features,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._requirements import (
    MissingLibrary,
    failure_details,
    require,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._version import format_version

SHARE_OPTIONS = (
    "source", "binary_path", "readonly", "cache", "sandbox", "xattr", "thread_pool_size", "openfiles",
    "queue_size", "idmap", "ats", "iommu", "packed",
)
DEFINE_ATTEMPTS = 5


class ShareError(Exception):
    """A problem found by the module itself (host checks before writing, verification after a define)."""


def _idrange_spec() -> t.Dict[str, t.Any]:
    return dict(
        type="list",
        elements="dict",
        options=dict(
            start=dict(type="int", required=True),
            target=dict(type="int", required=True),
            count=dict(type="int", required=True),
        ),
    )


def _share_options(nested: bool) -> t.Dict[str, t.Any]:
    opts: t.Dict[str, t.Any] = dict(
        source=dict(type="path"),
        binary_path=dict(type="path"),
        readonly=dict(type="bool"),
        cache=dict(type="str", choices=list(CACHE_MODES)),
        sandbox=dict(type="str", choices=list(SANDBOX_MODES)),
        xattr=dict(type="bool"),
        thread_pool_size=dict(type="int"),
        openfiles=dict(type="int"),
        queue_size=dict(type="int"),
        idmap=dict(type="dict", options=dict(uid=_idrange_spec(), gid=_idrange_spec())),
        ats=dict(type="bool"),
        iommu=dict(type="bool"),
        packed=dict(type="bool"),
    )
    if nested:
        opts["tag"] = dict(type="str", required=True)
        opts["state"] = dict(type="str", choices=list(STATES), default="present")
        opts["create_source"] = dict(type="bool")
        opts["owner"] = dict(type="str")
        opts["group"] = dict(type="str")
        opts["mode"] = dict(type="raw")
    return opts


def argument_spec() -> t.Dict[str, t.Any]:
    spec = dict(
        domain=dict(type="str", aliases=["name"]),
        uri=dict(type="str", default="qemu:///system"),
        xml_file=dict(type="path"),
        tag=dict(type="str"),
        state=dict(type="str", choices=list(STATES), default="present"),
        shares=dict(type="list", elements="dict", options=_share_options(nested=True)),
        exclusive=dict(type="bool", default=False),
        memory_backing=dict(type="str", choices=list(MEMORY_BACKING_MODES), default="auto"),
        live=dict(type="str", choices=["false", "true", "auto"], default="false"),
        backup=dict(type="bool", default=False),
        backup_dir=dict(type="path", default="/var/lib/virtiofs-libvirt/backups"),
        create_source=dict(type="bool", default=False),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="raw"),
        pending_binaries=dict(type="list", elements="path", default=[]),
        changed_binaries=dict(type="list", elements="path", default=[]),
    )
    spec.update(_share_options(nested=False))
    return spec


class ShareModule:
    """Reads, patches, defines and verifies; every failure is raised, ``main`` reports it."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.p = module.params
        self.result: t.Dict[str, t.Any] = dict(
            changed=False,
            actions=[],
            restart_required=False,
            restart_reasons=[],
            shares=[],
            memory_backing={},
            libvirt_version=None,
            domain={},
            defined_with_validation=None,
        )
        self.warnings: t.List[str] = []
        self.patch_actions: t.List[str] = []
        self.extra_actions: t.List[str] = []
        # tag -> per-share create_source/owner/group/mode (from shares[] or the top level)
        self.source_params: t.Dict[str, t.Dict[str, t.Any]] = {}
        # directories this run created, removed again when the run fails before writing
        self.created_dirs: t.List[str] = []
        self.written = False

    # -- input ---------------------------------------------------------------------------------

    def specs(self) -> t.List[ShareSpec]:
        if self.p["shares"] is not None:
            given = [k for k in SHARE_OPTIONS if self.p[k] is not None]
            if given or self.p["state"] != "present":
                extra = given + (["state"] if self.p["state"] != "present" else [])
                raise ShareError(
                    "the single-share options " + ", ".join(extra) + " cannot be combined with shares: "
                    "put them into the entries of shares"
                )
            specs = [ShareSpec.from_params(item) for item in self.p["shares"]]
            items = self.p["shares"]
        else:
            specs = [ShareSpec.from_params(self.p)]
            items = [self.p]
        validate_specs(specs)
        for spec, item in zip(specs, items):
            self.source_params[spec.tag] = {
                key: (item.get(key) if item.get(key) is not None else self.p[key])
                for key in ("create_source", "owner", "group", "mode")
            }
        return specs

    def check_host(self, specs: t.Sequence[ShareSpec]) -> t.List[t.Tuple[str, t.Dict[str, t.Any]]]:
        """Check binaries and sources on this host; return sources that must be created."""
        missing: t.List[t.Tuple[str, t.Dict[str, t.Any]]] = []
        pending = {os.path.normpath(p) for p in self.p["pending_binaries"]} if self.module.check_mode else set()
        for spec in specs:
            if spec.state != "present":
                continue
            if spec.binary_path is not None:
                path = spec.binary_path
                if not os.path.exists(path) and os.path.normpath(path) in pending:
                    pass  # an earlier task of this run installs it (check mode prediction)
                elif not (os.path.isfile(path) and os.access(path, os.X_OK)):
                    what = "does not exist" if not os.path.exists(path) else "is not an executable file"
                    raise ShareError(
                        f"share {spec.tag!r}: binary_path {path!r} {what} on this host: install virtiofsd "
                        "(or the wrapper) there, or fix the path"
                    )
            if spec.source is not None and not os.path.isdir(spec.source):
                if os.path.exists(spec.source):
                    raise ShareError(
                        f"share {spec.tag!r}: source {spec.source!r} exists but is not a directory: "
                        "virtio-fs shares a directory"
                    )
                params = self.source_params[spec.tag]
                if not params["create_source"]:
                    raise ShareError(
                        f"share {spec.tag!r}: source directory {spec.source!r} does not exist on this host: "
                        "create it first or set create_source=true"
                    )
                self.check_ownership(spec.tag, params)
                if spec.source not in [path for path, _params in missing]:
                    missing.append((spec.source, params))
        return missing

    @staticmethod
    def check_ownership(tag: str, params: t.Dict[str, t.Any]) -> None:
        """Refuse an unknown owner/group or a malformed mode before anything is created."""
        for key, lookup in (("owner", pwd.getpwnam), ("group", grp.getgrnam)):
            value = params.get(key)
            if value is None or str(value).isdigit():
                continue
            try:
                lookup(str(value))
            except KeyError:
                raise ShareError(
                    f"share {tag!r}: {key} {value!r} of the source directory to create does not exist on this host: "
                    f"create the {'user' if key == 'owner' else 'group'} first or choose another"
                ) from None
        mode = params.get("mode")
        if mode is not None and not isinstance(mode, int) and not re.fullmatch(
            r"0?[0-7]{3,4}|[ugoa]*[-+=][rwxXstugo]*(?:,[ugoa]*[-+=][rwxXstugo]*)*", str(mode)
        ):
            raise ShareError(
                f"share {tag!r}: mode {mode!r} of the source directory to create is neither octal (e.g. '0755') "
                "nor symbolic (e.g. 'u=rwx,g=rx,o=')"
            )

    def create_sources(self, missing: t.Sequence[t.Tuple[str, t.Dict[str, t.Any]]]) -> None:
        for path, params in missing:
            self.extra_actions.append(f"create source directory {path}")
            self.result["changed"] = True
            if self.module.check_mode:
                continue
            # remember the outermost directory that did not exist, to remove it if the run fails
            top = path
            while not os.path.exists(os.path.dirname(top)):
                top = os.path.dirname(top)
            os.makedirs(path, exist_ok=True)
            self.created_dirs.append(top)
            file_args = self.module.load_file_common_arguments(
                dict(owner=params["owner"], group=params["group"], mode=params["mode"]), path=path
            )
            self.module.set_fs_attributes_if_different(file_args, False)

    def remove_created_sources(self) -> None:
        """Undo :meth:`create_sources` after a failure (only directories that are still empty)."""
        for top in reversed(self.created_dirs):
            for root, _dirs, _files in os.walk(top, topdown=False):
                try:
                    os.rmdir(root)
                except OSError:
                    pass
        self.created_dirs = []

    # -- common --------------------------------------------------------------------------------

    def record_patch(self, before: DomainXML, after: DomainXML, patch: t.Any) -> None:
        self.patch_actions = list(patch.actions)
        self.result["memory_backing"] = patch.memory_backing
        self.result["domain"] = {"name": after.name, "uuid": after.uuid}
        self.warnings = list(patch.warnings)
        if patch.changed:
            self.result["changed"] = True
        if self.module._diff:
            name = after.name or "domain"
            self.result["diff"] = {
                "before": before.to_string(),
                "after": after.to_string(),
                "before_header": f"{name} (inactive definition)",
                "after_header": f"{name} (inactive definition)",
            }

    # -- xml_file ------------------------------------------------------------------------------

    def run_file(self, specs: t.Sequence[ShareSpec], missing: t.Sequence[t.Tuple[str, t.Dict[str, t.Any]]]) -> None:
        # follow a symlink: replace its target, keep the link (like ansible.builtin.copy)
        path = os.path.realpath(self.p["xml_file"])
        if self.p["live"] != "false":
            raise ShareError("live cannot be used with xml_file: there is no running domain for a file")
        before = DomainXML.from_file(path)
        after = before.copy()
        patch = apply_shares(after, specs, exclusive=self.p["exclusive"], memory_backing=self.p["memory_backing"])
        self.record_patch(before, after, patch)
        self.create_sources(missing)
        self.result["shares"] = after.shares()
        if not patch.changed or self.module.check_mode:
            return
        if self.p["backup"]:
            self.result["backup_file"] = self.module.backup_local(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".share-", suffix=".xml", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(after.to_bytes())
            self.module.atomic_move(tmp, path)
            self.written = True
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # -- libvirt -------------------------------------------------------------------------------

    def write_backup(self, domain_name: str, xml: str) -> str:
        directory = self.p["backup_dir"]
        os.makedirs(directory, mode=0o700, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S.%f")
        path = os.path.join(directory, f"{domain_name}-{stamp}.xml")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(xml)
        return path

    def run_domain(self, specs: t.Sequence[ShareSpec], missing: t.Sequence[t.Tuple[str, t.Dict[str, t.Any]]]) -> None:
        with Connection(self.p["uri"]) as conn:
            dom = conn.lookup(self.p["domain"])
            if not dom.is_persistent():
                raise ShareError(
                    f"domain {dom.name!r} is transient (it has no persistent definition): defining it would make it "
                    "persistent; define the domain first (virsh define) or patch its XML with xml_file before creating it"
                )
            version = conn.version()
            self.result["libvirt_version"] = format_version(version)
            for spec in specs:
                check_features(spec.features(), version, context=f"share {spec.tag!r}")
            with domain_lock(conn.uri, dom.uuid):
                stored = self.patch_and_define(dom, specs, version, missing)
                self.result["shares"] = stored.shares()
                if dom.is_active():
                    self.converge_live(dom, stored, specs)

    def patch_and_define(
        self,
        dom: t.Any,
        specs: t.Sequence[ShareSpec],
        version: t.Tuple[int, int, int],
        missing: t.Sequence[t.Tuple[str, t.Dict[str, t.Any]]],
    ) -> DomainXML:
        exclusive = self.p["exclusive"]
        memory_backing = self.p["memory_backing"]
        for _attempt in range(DEFINE_ATTEMPTS):
            current_xml = dom.inactive_xml()
            before = DomainXML.from_string(current_xml, what=f"definition of domain {dom.name!r}")
            after = before.copy()
            patch = apply_shares(after, specs, exclusive=exclusive, memory_backing=memory_backing)
            check_features(patch.features, version, context=f"domain {dom.name!r}")
            self.record_patch(before, after, patch)
            if not patch.changed or self.module.check_mode:
                self.create_sources(missing)
                return after
            # re-read right before defining: another writer may have changed the definition
            if dom.inactive_xml() != current_xml:
                continue
            if self.p["backup"] and "backup_file" not in self.result:
                self.result["backup_file"] = self.write_backup(dom.name, current_xml)
            self.create_sources(missing)
            missing = []
            self.result["defined_with_validation"] = dom.define(after.to_string(), current_xml)
            self.written = True
            stored = DomainXML.from_string(dom.inactive_xml(), what=f"definition of domain {dom.name!r}")
            problems = verify_converged(after, stored, specs, exclusive=exclusive, memory_backing=memory_backing)
            if problems:
                raise ShareError(
                    f"libvirt {format_version(version)} did not store the shares as defined for domain "
                    f"{dom.name!r}: " + "; ".join(problems)
                    + ". The new definition is in place; check the options against this libvirt version."
                )
            return stored
        raise ShareError(
            f"the definition of domain {dom.name!r} kept changing while this run tried to patch it "
            f"({DEFINE_ATTEMPTS} attempts); nothing was defined, run again"
        )

    def converge_live(self, dom: t.Any, stored: DomainXML, specs: t.Sequence[ShareSpec]) -> None:
        """Compare the running configuration with the definition; attach/detach when asked."""
        live_mode = self.p["live"]
        act = live_mode in ("true", "auto")
        live = DomainXML.from_string(dom.live_xml(), what=f"live XML of domain {dom.name!r}")
        reasons: t.List[str] = []
        live_shared = live.memory_status()["shared"]
        tags = [s.tag for s in specs]
        if self.p["exclusive"]:
            tags += [fs_tag for fs_tag in (d["tag"] for d in live.shares()) if fs_tag not in tags]
        wanted_present = any(stored.find_share(tag) is not None for tag in tags)
        if wanted_present and stored.memory_status()["shared"] and not live_shared:
            reasons.append("the running domain has no shared memory yet: memoryBacking changes need a full stop and start")
        for tag in tags:
            want = stored.find_share(tag)
            have = live.find_share(tag)
            if want is not None and have is None:
                if not act:
                    reasons.append(f"share {tag!r} is not attached to the running domain (live=false)")
                elif not live_shared:
                    reasons.append(f"share {tag!r} cannot be attached: the running domain has no shared memory")
                else:
                    self.live_step(dom, "attach", tag, element_to_string(want, strip=("address",)), reasons)
            elif want is None and have is not None:
                if not act:
                    reasons.append(f"share {tag!r} is still attached to the running domain (live=false)")
                else:
                    self.live_step(dom, "detach", tag, element_to_string(have), reasons)
            elif want is not None and have is not None:
                w = share_to_dict(want)
                h = share_to_dict(have)
                diff = [k for k in MANAGED_KEYS if k != "lock" and w.get(k) != h.get(k)]
                if diff:
                    reasons.append(
                        f"share {tag!r} runs with other options ({', '.join(diff)}): libvirt cannot change a "
                        "virtio-fs device of a running domain"
                    )
        changed_binaries = set(self.p["changed_binaries"])
        for have in live.shares():
            want = stored.find_share(have["tag"])
            if have["binary_path"] in changed_binaries and want is not None:
                reasons.append(
                    f"share {have['tag']!r} runs {have['binary_path']}, which changed in this run: its virtiofsd "
                    "keeps the old program and options until the domain is shut down and started"
                )
        if act and not self.module.check_mode and any(a.startswith("detach") for a in self.extra_actions):
            # confirm with libvirt's view of the running domain
            live = DomainXML.from_string(dom.live_xml(), what=f"live XML of domain {dom.name!r}")
            for tag in tags:
                want = stored.find_share(tag)
                have = live.find_share(tag)
                if want is None and have is not None:
                    reasons.append(
                        f"share {tag!r}: detach was requested but the guest has not released the device yet "
                        "(unmount the tag in the guest)"
                    )
        self.result["restart_reasons"] = reasons
        self.result["restart_required"] = bool(reasons)
        if reasons and live_mode == "true":
            self.warnings.append("the running domain could not be changed completely: " + "; ".join(reasons))

    def live_step(self, dom: t.Any, op: str, tag: str, xml: str, reasons: t.List[str]) -> None:
        verb = "attach share {!r} to" if op == "attach" else "detach share {!r} from"
        action = verb.format(tag) + " the running domain"
        if self.module.check_mode:
            self.extra_actions.append(action)
            self.result["changed"] = True
            return
        try:
            (dom.attach_live if op == "attach" else dom.detach_live)(xml)
        except LibvirtAdapterError as exc:
            reasons.append(f"share {tag!r} cannot be {op}ed live: {exc}")
            return
        self.extra_actions.append(action)
        self.result["changed"] = True

    # -- entry ---------------------------------------------------------------------------------

    def run(self) -> t.Dict[str, t.Any]:
        require("lxml")
        specs = self.specs()
        missing = self.check_host(specs)
        try:
            if self.p["xml_file"] is not None:
                self.run_file(specs, missing)
            else:
                require("libvirt-python")
                self.run_domain(specs, missing)
        except BaseException:  # also SystemExit: fail_json from set_fs_attributes_if_different
            if not self.written:  # a definition that is in place keeps its source directories
                self.remove_created_sources()
            raise
        self.result["actions"] = self.patch_actions + self.extra_actions
        for warning in self.warnings:
            self.module.warn(warning)
        return self.result


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("domain", "xml_file"), ("tag", "shares")],
        required_one_of=[("domain", "xml_file"), ("tag", "shares")],
        supports_check_mode=True,
    )
    runner = ShareModule(module)
    try:
        result = runner.run()
    except (MissingLibrary, ShareError, DomainXMLError, LibvirtFeatureError, LibvirtAdapterError, OSError) as exc:
        partial = {k: v for k, v in runner.result.items() if k in ("libvirt_version", "domain", "backup_file")}
        if runner.written:  # the new definition is in place even though a later step failed
            partial["changed"] = True
        partial.update(failure_details(exc))
        module.fail_json(msg=str(exc), **partial)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
