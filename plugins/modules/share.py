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
    libvirt; libvirt unreachable; malformed O(xml_file); NUMA cells with C(memAccess='private'); a transient domain;
    a O(source) that is C(/); a symbolic link on the way to O(source) that another user can change."
  - "Share sources are checked on the host with O(state=present), for domains and O(xml_file) alike and in check
    mode too. virtiofsd runs as root and the guest reads and writes the whole tree below the source (as root or as
    the files' owners), so a source that is C(/), resolves to it or is the same directory (a bind mount of C(/)) is
    refused: share a dedicated directory. A source below C(/proc) (as written or through symbolic links) is refused:
    C(/proc/self), C(/proc/thread-self) and C(/proc/PID) name the process that resolves them, which is virtiofsd,
    not the task."
  - "libvirt hands the source to virtiofsd as written, and virtiofsd resolves symbolic links when the domain starts,
    so the guest gets the directory the links point to at that moment. A symbolic link on the way (the source itself
    or a directory above it) that a user other than root owns, that sits in a directory writable by group or
    others without the sticky bit or owned by another user (sticky or not), or below a directory another user can
    rename entries of, is refused: that user would choose what the guest gets; write the resolved path.
    A root-owned link in a directory only root can change is a warning naming the resolved directory."
  - "A directory above the source that a user other than root owns or can write (a root-owned sticky directory
    such as C(/tmp) is fine), or a source owned by another user in a sticky directory others can write, is a
    warning with the command that fixes it: such a user could rename the source away and put another directory or
    a symbolic link in its place before the domain starts. It is not refused, because the source is shared, not run
    (compare O(binary_path), which must be root's all the way). The source directory's own owner and mode are the
    operator's choice and are not checked. For a source still to be created (O(create_source=true)) the existing
    part of its path is checked. The same checks are exported for the host role (C(_path_safety.source_findings),
    C(root_source_error), C(proc_source_error)). When several shares have such a problem, all of them are reported
    in one error (the first problem of each share)."
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
  - virtiofs.libvirt._share
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
      - Name or UUID of an existing domain to patch (its persistent definition). Shares are added or updated only in
        a QEMU domain (C(<domain type='kvm'>) or C(qemu)); another type (C(lxc), C(xen), ...) is refused.
      - Exactly one of O(domain), O(domains) and O(xml_file) is required.
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
      - It must be a regular file of at most 10 MiB (what C(virsh define) reads); a FIFO, device or directory is
        refused before it is opened. Its C(<domain type>) must be C(kvm) or C(qemu) (or absent) when a share is added
        or updated, because virtio-fs needs QEMU.
      - A patched file is written back in its own style, so that its diff shows only the real change - a UTF-8 byte
        order mark stays, the XML declaration keeps its exact text (quotes, spelling of the encoding, C(standalone)),
        a file without one gets none, and the blank space at the start and at the end of the file stays. CR LF line endings
        are kept when every line break of the file is CR LF; a file that mixes line endings (CR LF with LF or CR
        alone) is written with LF throughout. Comments, processing instructions and CDATA sections (as
        C(<![CDATA[...]]>), byte for byte) are kept.
      - The rest is lxml's serialisation, with the same meaning but possibly another spelling - every attribute in
        double quotes (a C(") inside becomes C(&quot;)), a character reference such as C(&#233;) or C(&#xE9;) becomes
        the character when the file's encoding has it and a decimal reference otherwise, C(&quot;) and C(&apos;) in
        text become C(") and C('), a C(>) in text becomes C(&gt;). Also rewritten - an empty element becomes C(<x/>),
        the space and line breaks between attributes inside a tag become one space, namespace declarations come
        before the other attributes, a literal tab or line break inside an attribute value becomes a space (as any
        XML parser reads it), CR-only line endings become LF, the blank space between the nodes outside the root
        element (comments, processing instructions) becomes one line break, a comment before the C(<!DOCTYPE>) moves
        after it, and the DOCTYPE is written in lxml's spelling (single spaces, double quotes, an empty internal
        subset C([]) dropped). A C(<!DOCTYPE>) that names another root element than C(domain) is refused.
      - Text (or a CDATA section) right after a removed share's C(</filesystem>) belongs to C(<devices>) and is kept
        (joined to the text before the share); a CDATA section there is refused, since it would become plain text.
      - The file is replaced by a new one (atomic rename), so a hard link to the old file keeps the old content.
      - The written bytes are parsed again and compared
        (canonically, and the CDATA sections as they are) before the file is replaced.
      - With C(--diff) the diff's before is the file's text as it is on disk and its after the text that is written;
        both headers are the file's path (a symbolic link resolved). Check mode returns the same diff.
      - No libvirt is needed, and no libvirt version checks are made.
    type: path
  tag:
    description:
      - "The mount tag of a single share (libvirt C(<target dir>)), 1 to 36 bytes of C(A-Z a-z 0-9 . _ : @ + = / -)
        (the guest writes it into C(/etc/fstab); the rule is the filter P(virtiofs.libvirt.tag_error#filter)). The
        guest mounts it with C(mount -t virtiofs TAG /mnt). It must not start with C(-) (mount and virtiofsd would
        read it as an option)."
      - A share with O(state=absent) may have any tag an older definition carries.
      - Exactly one of O(tag), O(shares) and O(domains) is required.
    type: str
  state:
    description:
      - V(present) adds or updates the share, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  shares:
    description:
    - Several shares of one domain in one call, each with the same options as the single-share options (O(tag) required).
      The definition is written once for the whole list.
    - Exactly one of O(tag), O(shares) and O(domains) is required; the single-share options cannot be combined with
      O(shares).
    type: list
    elements: dict
    suboptions:
      tag:
        description: Mount tag, see O(tag).
        type: str
        required: true
      state:
        description: See O(state).
        type: str
        choices:
        - present
        - absent
        default: present
      source:
        description: Host directory, see O(source).
        type: path
      binary_path:
        description: See O(binary_path).
        type: path
      readonly:
        description: See O(readonly).
        type: bool
      cache:
        description: See O(cache).
        type: str
        choices:
        - none
        - always
      sandbox:
        description: See O(sandbox).
        type: str
        choices:
        - namespace
        - chroot
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
            suboptions:
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
            suboptions:
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
  domains:
    description:
    - 'The shares of many domains of the connection O(uri), converged in one module run (one connection, one pass):
      the form for a whole hypervisor, which the host role uses.'
    - 'Every entry of every domain is validated first, and every domain is looked up and patched in memory: any bad
      input anywhere (an unknown or transient domain, a bad share, a feature the host''s libvirt lacks, a tag that
      a 9p share already uses) fails the run, naming the domain and the tag, before any domain is changed.'
    - Then each domain is converged exactly as with O(domain) (its lock, re-read before define, verification, O(live),
      O(backup), O(create_source)). When libvirt fails for one domain (define refused, domain vanished, lock held
      too long) that domain keeps its old definition, the others are still converged, RV(domains) says per domain
      what changed or failed and why, and the task fails; its message names the failed and the converged domains.
    - When the libvirt connection is lost in the middle of the run (libvirtd stopped), the error of each domain not
      yet converged says what was done for it (nothing defined; defined but unverified; defined and verified with
      the running domain not compared; or, when the connection broke during the define, that this is unknown).
    - O(exclusive), O(memory_backing), O(live), O(backup), O(create_source)/O(owner)/O(group)/O(mode) (as defaults
      of the entries), O(pending_binaries) and O(changed_binaries) apply to every domain.
    - Mutually exclusive with O(domain), O(xml_file), O(tag) and O(shares).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name or UUID of an existing domain; each domain at most once.
        type: str
        required: true
        aliases:
        - domain
      shares:
        description: The shares of this domain, as in O(shares).
        type: list
        elements: dict
        required: true
        suboptions:
          tag:
            description: Mount tag, see O(tag).
            type: str
            required: true
          state:
            description: See O(state).
            type: str
            choices:
            - present
            - absent
            default: present
          source:
            description: Host directory, see O(source).
            type: path
          binary_path:
            description: See O(binary_path).
            type: path
          readonly:
            description: See O(readonly).
            type: bool
          cache:
            description: See O(cache).
            type: str
            choices:
            - none
            - always
          sandbox:
            description: See O(sandbox).
            type: str
            choices:
            - namespace
            - chroot
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
                suboptions:
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
                suboptions:
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
  lock_timeout:
    description:
      - Seconds to wait for another run of this module that is patching the same domain on this host (runs are
        serialised per domain with a lock file). When it holds the lock longer, that domain fails with a message
        naming the lock; with O(domains) the other domains are still converged.
      - V(0) tries once and fails at once when another run holds the lock. A negative value is refused (there is no
        "wait forever"; give a large number instead).
    type: int
    default: 120
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

- name: Every domain of this hypervisor in one run (all input checked before any domain changes)
  virtiofs.libvirt.share:
    live: auto
    domains:
      - name: web01
        shares:
          - tag: projects
            source: /srv/projects
            binary_path: /opt/virtiofsd-rust/virtiofsd.sh
      - name: web02
        shares:
          - tag: projects
            source: /srv/projects
            binary_path: /opt/virtiofsd-rust/virtiofsd.sh
          - tag: old
            state: absent
  register: fleet

- name: The domains that need a full stop and start
  ansible.builtin.debug:
    msg: "{{ fleet.domains | dict2items | selectattr('value.restart_required') | map(attribute='key') | list }}"

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
  description:
    - The inactive definition before and after (a dict with C(before), C(after) and their headers), shown as a
      unified diff in diff mode.
    - With O(domains) a list of such dicts, one per domain (the headers name the domain).
    - With O(xml_file) the file's text on disk and the text written; the headers are the file's path.
  returned: when diff mode is on
  type: raw
actions:
  description: What was done (or would be done in check mode), one human-readable line per step.
  returned: when O(domains) is not used
  type: list
  elements: str
  sample: ["add share 'projects' (source /srv/projects)", "add <memoryBacking><source type='memfd'/> (shared memory for virtio-fs)"]
restart_required:
  description:
    - Whether the running domain differs from its new definition in a way that needs a full stop and start.
    - Always V(false) for domains that are not running and with O(xml_file).
    - With O(domains), V(true) when any domain needs it (RV(domains) says which).
    - Also V(true) in every run, not only the run that made the change, while a share's running virtiofsd is older
      than its program, read from C(/proc) on the host - the daemon's executable was deleted or replaced by a new
      file since it started, or the O(shares[].binary_path) wrapper was written or its mode changed (mtime/ctime)
      after the daemon started (a change within one second of the start is not told apart). It stays V(true)
      until the domain has been shut down and started.
    - A mode or owner repair of the wrapper by M(virtiofs.libvirt.virtiofsd_wrapper) (same bytes) is not counted; the
      module records it, and the wrapper's change time before the repair counts while the wrapper keeps the
      recorded inode, ctime and bytes. A C(chmod)/C(chown) by anything else is counted (V(true)); from the file
      alone it cannot be told from C(cp -p) or C(install -p) putting other bytes in place with an old mtime, so
      this errs on the safe side.
  returned: always
  type: bool
  sample: true
restart_reasons:
  description: Why RV(restart_required) is V(true).
  returned: when O(domains) is not used
  type: list
  elements: str
  sample: ["memoryBacking changes need a full stop and start of the domain"]
shares:
  description: The virtio-fs shares of the resulting definition (all of them, not only the managed ones).
  returned: when O(domains) is not used
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
  returned: when O(domains) is not used
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
  returned: when O(backup=true) and the definition was changed (with O(domains) in RV(domains))
  type: str
  sample: /var/lib/virtiofs-libvirt/backups/web01-20250101T120000.123456.xml
libvirt_version:
  description: Version of the host's libvirt (V(null) with O(xml_file)).
  returned: always
  type: str
  sample: 9.0.0
domain:
  description: Name and UUID of the patched domain (from the definition).
  returned: when O(domains) is not used
  type: dict
  sample: {name: web01, uuid: 1b7e3c4a-8d52-4f6e-9a0b-2c1d3e4f5a6b}
defined_with_validation:
  description: Whether the define used C(VIR_DOMAIN_DEFINE_VALIDATE) (V(null) when nothing was defined).
  returned: when O(domains) is not used
  type: bool
  sample: true
domains:
  description:
    - With O(domains), per requested domain (the key is the name or UUID as given) what the module returns for
      one domain (RV(changed), RV(actions), RV(restart_required), RV(restart_reasons), RV(shares),
      RV(memory_backing), RV(domain), RV(defined_with_validation), RV(backup_file), RV(libvirt_version), and RV(diff)
      in diff mode), plus
      C(failed) and, for a domain that failed, C(msg) with the reason (its definition is unchanged unless
      C(changed) is V(true), which means the new definition is in place but a later step failed).
    - In diff mode the top-level RV(diff) is a list with one entry per domain.
  returned: when O(domains) is used
  type: dict
  sample:
    web01: {changed: true, failed: false, actions: ["add share 'projects' (source /srv/projects)"], restart_required: false,
            restart_reasons: [], shares: [], memory_backing: {}, libvirt_version: 11.3.0,
            domain: {name: web01, uuid: 1b7e3c4a-8d52-4f6e-9a0b-2c1d3e4f5a6b}, defined_with_validation: true}
    web02: {changed: false, failed: true, msg: "XML error: ...", actions: [], libvirt_version: 11.3.0,
            domain: {name: web02, uuid: 2c8f4d5b-9e63-4a7f-8b1c-3d2e4f5a6b7c}}
"""

import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import DomainXMLError
from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import backup_file
from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt import (
    Connection,
    LibvirtAdapterError,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._lock import DomainLockError, domain_lock
from ansible_collections.virtiofs.libvirt.plugins.module_utils._libvirt_features import LibvirtFeatureError
from ansible_collections.virtiofs.libvirt.plugins.module_utils._requirements import (
    MissingLibrary,
    fail_arguments,
    require,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._restart import stale_daemons
from ansible_collections.virtiofs.libvirt.plugins.module_utils._share import (
    DEFAULT_BACKUP_DIR,
    Host,
    ShareError,
    run_share,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._share_options import (
    LIVE_MODES,
    MEMORY_BACKING_MODES,
    STATES,
    share_argument_spec,
)


def argument_spec() -> t.Dict[str, t.Any]:
    entry = share_argument_spec(entry=True)
    spec: t.Dict[str, t.Any] = dict(
        domain=dict(type="str", aliases=["name"]),
        domains=dict(
            type="list",
            elements="dict",
            options=dict(
                name=dict(type="str", required=True, aliases=["domain"]),
                shares=dict(type="list", elements="dict", required=True, options=entry),
            ),
        ),
        uri=dict(type="str", default="qemu:///system"),
        xml_file=dict(type="path"),
        tag=dict(type="str"),
        state=dict(type="str", choices=list(STATES), default="present"),
        shares=dict(type="list", elements="dict", options=entry),
        exclusive=dict(type="bool", default=False),
        memory_backing=dict(type="str", choices=list(MEMORY_BACKING_MODES), default="auto"),
        live=dict(type="str", choices=list(LIVE_MODES), default="false"),
        backup=dict(type="bool", default=False),
        backup_dir=dict(type="path", default=DEFAULT_BACKUP_DIR),
        lock_timeout=dict(type="int", default=120),
        pending_binaries=dict(type="list", elements="path", default=[]),
        changed_binaries=dict(type="list", elements="path", default=[]),
    )
    spec.update(share_argument_spec(entry=False))
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("domain", "xml_file", "domains"), ("tag", "shares", "domains")],
        required_one_of=[("domain", "xml_file", "domains"), ("tag", "shares", "domains")],
        supports_check_mode=True,
    )
    p = module.params

    def set_attributes(path: str, owner: t.Any, group: t.Any, mode: t.Any) -> None:
        file_args = module.load_file_common_arguments(dict(owner=owner, group=group, mode=mode), path=path)
        module.set_fs_attributes_if_different(file_args, False)

    host = Host(connect=Connection, lock=domain_lock, set_attributes=set_attributes,
                backup_file=backup_file, move=module.atomic_move, stale_daemons=stale_daemons(p["uri"]))
    try:
        require("lxml")
        result, warnings, failed = run_share(p, module.check_mode, module._diff, host,
                                             lambda: require("libvirt-python"))
    except (MissingLibrary, ShareError, DomainXMLError, LibvirtFeatureError, LibvirtAdapterError, DomainLockError,
            OSError) as exc:
        result, warnings, failed = fail_arguments(exc), [], True
    for warning in warnings:
        module.warn(warning)
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
