#!/usr/bin/python
# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: virtiofsd_wrapper
short_description: Write the wrapper script libvirt runs instead of virtiofsd
version_added: 0.1.0
description:
  - Writes a POSIX C(sh) wrapper around the Rust C(virtiofsd) for use as C(<binary path='...'/>) of a libvirt
    virtio-fs share, so that daemon options libvirt has no XML for (or that must be forced) reach the daemon.
  - The wrapper passes libvirt's own arguments through and appends the configured options after them
    (C(exec BINARY "$@" OPTIONS)), so they win over libvirt's duplicates (virtiofsd 1.7.1 and later keep the last
    occurrence of an option). The bare capability probe C(WRAPPER --print-capabilities) execs the daemon with just
    that argument. The wrapper never prints anything itself; every value is shell-quoted.
  - Both libvirt calling styles work, C(--fd=N -o source=DIR,...) (libvirt before the C(separate-options)
    feature) and C(--fd=N --shared-dir DIR ...) (newer libvirt, for example libvirt 11 on Debian 13).
  - Every option is checked before anything is written, against the option table for the version the daemon
    reports with C(--version), against the options the daemon lists in C(--help), and by the daemon's own parser
    (C(BINARY --print-capabilities OPTIONS)). An error names the option, the installed version and the version that
    added the option; an existing wrapper is then left byte-identical.
  - The new wrapper is first written to a temporary file next to O(path) (root-owned, mode 0755) and tested there;
    C(WRAPPER --version) must report the daemon's version and C(WRAPPER --print-capabilities) must print JSON of
    type C(fs). Only then is it moved over O(path). If a test fails the temporary file is removed, the file at
    O(path) is not touched at all (same bytes, mode, inode and timestamps, so running domains are not reported as
    needing a restart) and the module fails.
  - Several wrappers with different O(path) values can coexist, for example one per share.
author:
  - virtiofs.libvirt contributors (@virtiofs-libvirt)
extends_documentation_fragment:
  - virtiofs.libvirt._attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the wrapper script before and after; when the old file's mode or owner changes too, the
        headers name them (C(PATH (mode 0700)) before, C(PATH (mode 0755)) after).
      - A symbolic link at O(path) is shown as what it is, C(PATH (symlink -> TARGET)) with no content before,
        not as its target's script, by O(state=present) (the link is replaced) and by O(state=absent) (the link is
        removed).
      - A wrapper others could change that O(force=true) replaces shows its script before and after (the same text
        when only its owner or mode was wrong), with the owner and mode in the headers
        (C(PATH (mode 0775, owner 1000, group 1000)) before, C(PATH (mode 0755, owner 0, group 0)) after).
      - When only the mode or group of an existing wrapper changes (a repair in place, see O(path)), the diff is that
        of M(ansible.builtin.file); C(before) and C(after) are dicts with C(path) and the attributes that change
        (C(mode) as text such as V(0700), C(group) as a number).
      - A previous file that is not UTF-8 text (an ELF binary, Latin-1 bytes) is shown as
        C(<binary file, N bytes, sha256 HEX>), never as raw bytes.
  idempotent:
    support: full
options:
  path:
    description:
      - Absolute path of the wrapper script; use it as C(<binary path='...'/>) in the domain XML.
      - Its directory must exist. On Debian/Ubuntu a confined libvirtd needs an AppArmor rule that allows executing
        it (C(PATH PUx,) in C(/etc/apparmor.d/local/usr.sbin.libvirtd)), written for the resolved path RV(realpath)
        (AppArmor mediates the executable by its resolved path, a rule for a path through a symbolic link never
        matches).
      - When O(path) is a symbolic link, the link itself is replaced by the wrapper, a regular file (also when its
        target already holds the same script); the target is left unchanged (not written, not chmod-ed, not backed
        up). A warning says so (in check mode too), and the diff shows the link as before
        (C(PATH (symlink -> TARGET)), no content). The link is judged by the file it points to (see O(state)); who
        owns that file does not matter, it is not kept and not run again.
      - A symbolic link at O(path) that points nowhere (its target does not exist, or the link cannot be followed)
        is refused by O(state=present) unless O(force=true), which replaces the link (nothing is created at its
        target); O(state=absent) refuses it always.
      - A symbolic link to a directory, FIFO, socket or device is refused, and the error says so
        (C(PATH is a symlink to a FIFO (TARGET))).
      - The directories on the way to O(path) (the resolved ones, and those of every link on the way) must be
        owned by root and not writable by group or others (a root-owned sticky directory such as C(/tmp) passes),
        also with O(force=true); libvirt runs the wrapper as root. The error names the directory and the fix
        (C(chmod go-w DIR), C(chown root:root DIR)).
      - The wrapper is always written owned by root:root with mode 0755. A regular file at O(path) whose owner is
        not root, or that is writable by group or others (for example uid 1000, or mode 0775 or 0757), could have
        been changed by somebody other than root, so its content cannot be trusted (also when it is a wrapper this
        module wrote with the right script). Without O(force=true) it is an error (in check mode too) that names
        the fix (C(chown root:root PATH), C(chmod go-w PATH)) and the file stays as it is. With O(force=true) it is
        replaced by a new file (a new inode, never a C(chmod)/C(chown) of the old one, which its owner may hold open
        for writing; the new file does not take the old one's owner, mode or SELinux context on the way), with a
        warning; RV(content_changed) is V(true) even when the script was the same.
      - A wrapper this module wrote that is root-owned and not writable by group or others, but has another mode
        or group (for example mode 0700, 0750, 0555 or 04755, or group 1001 with mode 0755), is repaired in place
        with C(chmod 0755) and C(chown 0:0), no O(force) needed; RV(content_changed) is V(false).
    type: path
    default: /opt/virtiofsd-rust/virtiofsd.sh
  binary:
    description:
      - Absolute path of the real Rust virtiofsd the wrapper execs. Required when O(state=present).
      - Refused when it is (or resolves to) O(path), when it is another wrapper written by this module, when it is
        not executable, and when it is the legacy C virtiofsd of QEMU 7.2 and older.
    type: path
  state:
    description:
      - V(present) writes the wrapper, V(absent) removes the file at O(path).
      - V(present) only replaces a wrapper this module wrote; any other file at O(path) is an error and stays in
        place, unless O(force=true).
      - V(absent) only removes a wrapper this module wrote (its header names the module); any other
        file at O(path) is an error and stays in place.
      - V(absent) on a symbolic link to a wrapper this module wrote removes the link, never its target; a warning
        names the target left in place and no backup is made (nothing of the target is removed). A link to any
        other file, a link that points nowhere, a directory, FIFO, socket or device (or a link to one) is an error
        and stays in place.
      - When the removal itself fails (C(unlink) refused, for example the directory or file immutable, a read-only file system
        or bind mount), the error names the path, the system's words and the fix; the file stays in place.
    type: str
    choices: [present, absent]
    default: present
  backup:
    description:
      - Keep a timestamped copy of the previous file next to it before changing or removing it, named
        C(PATH.PID.YYYY-MM-DD@HH:MM:SS.RANDOM~) (Ansible's C(backup_local) pattern with 8 random hex digits).
      - The copy is created by the module itself with C(O_CREAT|O_EXCL|O_NOFOLLOW) (mode 0600 until it is
        complete), never through a name planted in the directory by another user (a symbolic link or a file there is
        not followed or reused); then it gets the permission bits and times of the previous file and is owned by the
        user the module runs as (root).
      - When the copy cannot be made (disk full, read-only file system) the task fails naming the operation, the
        file and the system error; O(path) is not changed and no partial copy is left.
    type: bool
    default: false
  force:
    description:
      - With O(state=present), replace a file at O(path) that this module did not write (one whose second line is
        not the module's header C(# virtiofsd wrapper -- managed by Ansible (virtiofs.libvirt.virtiofsd_wrapper).)
        after a C(#!) line; a comment elsewhere that mentions the module does not count), for example a hand-written
        wrapper being migrated). Without it such a file is an error, in check mode too, and stays as it is; the error says
        what the file looks like (an ELF binary, a script, ...).
      - Also replaces a file at O(path) that users other than root can change (owner not root, group- or
        other-writable; see O(path)), and a symbolic link at O(path) that points nowhere.
      - Use it together with O(backup=true) to keep a copy of the replaced file. A FIFO, socket or device at
        O(path) (or a symbolic link to one) is refused even with O(force=true), as are directories on the way to
        O(path) that others can write to.
      - O(state=absent) ignores it and never removes a file this module did not write.
    type: bool
    default: false
  extra_args:
    description:
      - Further virtiofsd arguments, written as on the command line (V(--cache=never), V(--no-readdirplus),
        V(--translate-uid=map:0:1000:1)).
      - Each argument is mapped back to its O(options) key and validated exactly like it; unknown options are an
        error, and an option may not be set both here and in O(options).
      - Options libvirt owns are refused (V(--fd), V(--socket-path), V(--socket), V(--socket-group),
        V(--shared-dir), V(--tag), V(-o), V(--print-capabilities), V(--help), V(--version)), as are the deprecated
        V(-d) and V(-f).
    type: list
    elements: str
    default: []
  options:
    description:
      - Daemon options, one typed key per virtiofsd option (virtiofsd's long option name with V(_) for V(-)).
        Unset keys render nothing. Value options render as one argument C(--flag=value).
      - Keys added in a virtiofsd release newer than the installed daemon are refused with an error that names both
        versions.
    type: dict
    default: {}
    suboptions:
      allow_direct_io:
        description:
          - Honour the O_DIRECT flag of guest applications. Added in virtiofsd 1.0.0.
          - V(true) renders C(--allow-direct-io); V(false) renders nothing (the default).
        type: bool
      allow_mmap:
        description:
          - Allow shared mmap of files with O(options.cache=metadata) or O(options.cache=never). Added in virtiofsd
            1.11.0.
          - V(true) renders C(--allow-mmap); V(false) renders nothing (the default).
        type: bool
      announce_submounts:
        description:
          - Tell the guest which directories are mount points. Added in virtiofsd 1.0.0; on by default since 1.6.0.
          - V(true) renders C(--announce-submounts) (1.0.0; a no-op since 1.6.0).
          - V(false) renders C(--no-announce-submounts), which needs virtiofsd 1.6.0 (before that submounts were not
            announced unless asked for, so leave the option unset there).
        type: bool
      cache:
        description:
          - Caching policy. Added in virtiofsd 1.0.0; V(metadata) added in 1.8.0.
          - Renders C(--cache=VALUE).
          - libvirt also sets it from C(<binary><cache mode=.../></binary>); older libvirt passes that as C(-o cache=),
            which overrides the wrapper. Prefer the cache option of the C(virtiofs.libvirt.share) module (a warning
            says so).
        type: str
        choices: [always, auto, metadata, never]
      gid_map:
        description:
          - User-namespace GID mappings C(:NAMESPACE_GID:HOST_GID:COUNT:), needs the C(namespace) sandbox. Added in
            virtiofsd 1.6.0; more than one entry needs 1.11.0.
          - Renders one C(--gid-map=ENTRY) per entry.
        type: list
        elements: str
      inode_file_handles:
        description:
          - Reference inodes by file handles instead of O_PATH file descriptors (needs CAP_DAC_READ_SEARCH). Added in
            virtiofsd 1.0.0 (V(never), V(fallback)); V(mandatory) added in 1.1.0, V(prefer) in 1.2.0. V(fallback) is a
            deprecated alias of V(prefer) (warning). Default V(never) up to 1.13.2, V(prefer) since 1.13.3.
          - Renders C(--inode-file-handles=VALUE) (virtiofsd requires the C(=) form).
        type: str
        choices: [fallback, mandatory, never, prefer]
      killpriv_v2:
        description:
          - FUSE_HANDLE_KILLPRIV_V2 support. Off by default since virtiofsd 1.3.0 (on by default in 1.1.x-1.2.x).
          - V(true) renders C(--killpriv-v2), added in virtiofsd 1.3.0.
          - V(false) renders C(--no-killpriv-v2), added in virtiofsd 1.1.0 (a no-op since 1.3.0).
        type: bool
      log_level:
        description:
          - Daemon log level (its output ends up in libvirt's per-device virtiofsd log). Added in virtiofsd 1.0.0;
            V(off) added in 1.1.0. The RUST_LOG environment variable overrides it.
          - Renders C(--log-level=VALUE).
        type: str
        choices: [debug, error, info, 'off', trace, warn]
      migration_confirm_paths:
        description:
          - For find-paths migration, double-check inode paths at switch-over. Added in virtiofsd 1.11.0. Conflicts
            with O(options.migration_mode=file-handles).
          - V(true) renders C(--migration-confirm-paths); V(false) renders nothing (the default).
        type: bool
      migration_mode:
        description:
          - How the daemon state is migrated. Added in virtiofsd 1.11.0 (V(find-paths)); V(file-handles) added in
            1.12.0.
          - Renders C(--migration-mode=VALUE).
        type: str
        choices: [file-handles, find-paths]
      migration_on_error:
        description:
          - What the migration destination does when an inode cannot be migrated. Added in virtiofsd 1.11.0.
          - Renders C(--migration-on-error=VALUE).
        type: str
        choices: [abort, guest-error]
      migration_verify_handles:
        description:
          - For find-paths migration, verify that the destination opened the same inodes. Added in virtiofsd 1.11.0.
            Conflicts with O(options.migration_mode=file-handles).
          - V(true) renders C(--migration-verify-handles); V(false) renders nothing (the default).
        type: bool
      modcaps:
        description:
          - Modify the daemon's capability set, a C(:)-separated list of C(+cap)/C(-cap), for example
            V(+sys_admin:-chown). Added in virtiofsd 1.2.0.
          - Renders C(--modcaps=VALUE).
        type: str
      posix_acl:
        description:
          - POSIX ACL support (implies xattr). Added in virtiofsd 1.2.0. Conflicts with O(options.translate_uid) and
            O(options.translate_gid).
          - V(true) renders C(--posix-acl); V(false) renders nothing (the default).
        type: bool
      preserve_noatime:
        description:
          - Keep the O_NOATIME open flag. Added in virtiofsd 1.7.0.
          - V(true) renders C(--preserve-noatime); V(false) renders nothing (the default).
        type: bool
      readdirplus:
        description:
          - READDIRPLUS support; on by default, always off with O(options.cache=never). Added in virtiofsd 1.0.0.
          - V(false) renders C(--no-readdirplus); V(true) renders nothing (the default).
        type: bool
      readonly:
        description:
          - Refuse every guest modification of the share. Added in virtiofsd 1.13.0.
          - V(true) renders C(--readonly); V(false) renders nothing (the default).
        type: bool
      rlimit_nofile:
        description:
          - Maximum number of open files; V(0) leaves the limit unchanged. Added in virtiofsd 1.0.0.
          - Renders C(--rlimit-nofile=VALUE).
        type: int
      sandbox:
        description:
          - Sandbox mechanism. Added in virtiofsd 1.0.0.
          - Renders C(--sandbox=VALUE).
          - libvirt also sets it from C(<binary><sandbox mode=.../></binary>) (libvirt 7.2.0 and later); older libvirt
            passes that as C(-o sandbox=), which overrides the wrapper. Prefer the sandbox option of the
            C(virtiofs.libvirt.share) module (a warning says so).
        type: str
        choices: [chroot, namespace, none]
      seccomp:
        description:
          - Action on a syscall outside the seccomp allow list. Added in virtiofsd 1.0.0; V(log) added in 1.1.0.
          - Renders C(--seccomp=VALUE).
        type: str
        choices: [kill, log, none, trap]
      security_label:
        description:
          - Store the guest's security label on new files (implies xattr). Added in virtiofsd 1.4.0.
          - V(true) renders C(--security-label); V(false) renders nothing (the default).
        type: bool
      syslog:
        description:
          - Log to syslog instead of stderr. Added in virtiofsd 1.1.0.
          - V(true) renders C(--syslog); V(false) renders nothing (the default).
        type: bool
      thread_pool_size:
        description:
          - Thread pool size; V(0) disables the pool. Added in virtiofsd 1.0.0.
          - Renders C(--thread-pool-size=VALUE).
        type: int
      translate_gid:
        description:
          - In-daemon GID translation rules C(TYPE:SOURCE:TARGET:COUNT) (TYPE one of C(guest), C(host),
            C(squash-guest), C(squash-host), C(map)) or C(forbid-guest:SOURCE:COUNT). Added in virtiofsd 1.13.0.
            Conflicts with O(options.posix_acl).
          - Renders one C(--translate-gid=ENTRY) per entry.
        type: list
        elements: str
      translate_uid:
        description:
          - In-daemon UID translation rules, same format as O(options.translate_gid). Added in virtiofsd 1.13.0.
            Conflicts with O(options.posix_acl).
          - Renders one C(--translate-uid=ENTRY) per entry.
        type: list
        elements: str
      uid_map:
        description:
          - User-namespace UID mappings C(:NAMESPACE_UID:HOST_UID:COUNT:), needs the C(namespace) sandbox. Added in
            virtiofsd 1.6.0; more than one entry needs 1.11.0.
          - Renders one C(--uid-map=ENTRY) per entry.
        type: list
        elements: str
      writeback:
        description:
          - Writeback caching. Added in virtiofsd 1.0.0.
          - V(true) renders C(--writeback); V(false) renders nothing (the default).
        type: bool
      xattr:
        description:
          - Extended attribute support. Added in virtiofsd 1.0.0.
          - V(true) renders C(--xattr); V(false) renders nothing (the default).
          - libvirt also sets it from C(<binary xattr='on|off'>); older libvirt passes that as C(-o xattr), which
            overrides the wrapper. Prefer the xattr option of the C(virtiofs.libvirt.share) module (a warning says so).
        type: bool
      xattrmap:
        description:
          - Extended attribute name mapping rules (implies xattr), for example V(:map::user.virtiofs.:). Added in
            virtiofsd 1.0.0.
          - Renders C(--xattrmap=VALUE).
        type: str
notes:
  - The module needs root (the wrapper is written owned by root with mode 0755).
  - Every run of the daemon (C(--version), C(--help), C(--print-capabilities)) and of the new wrapper's self-test
    may take at most 30 seconds; a run that takes longer is killed with its process group and the task fails
    naming the command (for example a binary that waits for input, or one that runs the wrapper path again and so
    loops). O(path) is not changed then.
  - A mode or group repair in place (right bytes, a mode or group that gives nobody but root write access; see
    O(path)) moves the wrapper's ctime. The module records the repair
    (device, inode, ctime, SHA-256 of the bytes and the change time before it) in
    C(/run/virtiofs-libvirt/attribute-repairs/), so that M(virtiofs.libvirt.share) and M(virtiofs.libvirt.share_info)
    do not report running domains as needing a restart for it while the wrapper keeps that inode, ctime and bytes.
    A mode drift made after a domain started is still reported (the module cannot tell it from a rewrite).
  - libvirt starts the daemon only when the domain starts; running domains keep the daemon they have until they are
    shut off and started again.
seealso:
  - name: virtiofsd command line
    description: Options of the Rust virtiofsd.
    link: https://gitlab.com/virtio-fs/virtiofsd
  - name: libvirt virtio-fs guide
    description: How libvirt starts virtiofsd and what the domain needs.
    link: https://libvirt.org/kbase/virtiofs.html
"""

EXAMPLES = r"""
---
- name: Wrapper that forces metadata caching and file handles
  virtiofs.libvirt.virtiofsd_wrapper:
    path: /opt/virtiofsd-rust/virtiofsd.sh
    binary: /opt/virtiofsd-rust/virtiofsd
    options:
      inode_file_handles: prefer
      cache: metadata
      allow_mmap: true
      log_level: warn

- name: A second wrapper for a read-only share with ID translation
  virtiofs.libvirt.virtiofsd_wrapper:
    path: /opt/virtiofsd-rust/virtiofsd-ro.sh
    binary: /opt/virtiofsd-rust/virtiofsd
    backup: true
    options:
      readonly: true
      translate_uid:
        - map:0:1000:1
      translate_gid:
        - map:0:1000:1
    extra_args:
      - --no-readdirplus

- name: Replace a hand-written wrapper (no header of this module), keeping a copy of it
  virtiofs.libvirt.virtiofsd_wrapper:
    path: /usr/local/libexec/virtiofsd-wrapper
    binary: /opt/virtiofsd-rust/virtiofsd
    force: true
    backup: true
    options:
      cache: auto

- name: Remove a wrapper
  virtiofs.libvirt.virtiofsd_wrapper:
    path: /opt/virtiofsd-rust/virtiofsd-ro.sh
    state: absent
"""

RETURN = r"""
path:
  description: Path of the wrapper.
  returned: always
  type: str
  sample: /opt/virtiofsd-rust/virtiofsd.sh
binary:
  description: The daemon the wrapper execs.
  returned: when O(state=present)
  type: str
  sample: /opt/virtiofsd-rust/virtiofsd
argv:
  description: The options the wrapper appends after libvirt's arguments, one argument per item.
  returned: when O(state=present)
  type: list
  elements: str
  sample: ["--cache=metadata", "--inode-file-handles=prefer", "--log-level=warn"]
content_changed:
  description:
    - Whether the bytes at O(path) were replaced (in check mode, would be) - a new wrapper, other options, or a
      symbolic link replaced by the wrapper, or a file others could change replaced with O(force=true) (also with
      the same bytes). V(false) when only the mode or group was repaired in place, which running
      daemons do not care about.
    - The role R(virtiofs.libvirt.host,ansible_collections.virtiofs.libvirt.host_role) passes only these wrappers
      to M(virtiofs.libvirt.share) as O(virtiofs.libvirt.share#module:changed_binaries), so a mode repair does not
      make running domains restart pending.
  returned: when O(state=present)
  type: bool
  sample: true
daemon_version:
  description: Version the daemon reports with C(--version).
  returned: when O(state=present)
  type: str
  sample: 1.13.2
realpath:
  description:
    - Where the wrapper is (or, in check mode, would be) with every symbolic link resolved - the resolved
      directory of O(path) and the file name of O(path) (a symbolic link at O(path) is replaced by the wrapper, so
      its target does not count).
    - AppArmor and SELinux mediate the executable by this path, not by O(path); use it in their rules. The host
      role R(virtiofs.libvirt.host,ansible_collections.virtiofs.libvirt.host_role) does.
  returned: when O(state=present) and the checks of the paths passed
  type: str
  sample: /srv/virtiofsd-rust/virtiofsd.sh
backup_file:
  description: Name of the backup of the previous file.
  returned: when O(backup=true) and a previous regular file was changed or removed (not for a symbolic link at O(path))
  type: str
  sample: /opt/virtiofsd-rust/virtiofsd.sh.12345.2025-01-01@00:00:00.3f9a0c1e~
"""

import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.virtiofs.libvirt.plugins.module_utils._files import backup_file
from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd import VirtiofsdError
from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd_options import (
    argument_spec as options_argument_spec,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import (
    STATES,
    WrapperError,
    apply,
    run_reporting_os_errors,
    run_with_timeout,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/opt/virtiofsd-rust/virtiofsd.sh"),
            binary=dict(type="path"),
            state=dict(type="str", choices=list(STATES), default="present"),
            backup=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            extra_args=dict(type="list", elements="str", default=[]),
            options=dict(type="dict", default={}, options=options_argument_spec()),
        ),
        required_if=[("state", "present", ["binary"])],
        supports_check_mode=True,
    )
    p = module.params
    result: t.Dict[str, t.Any] = {"changed": False, "path": p["path"]}

    def move(src: str, dest: str, fresh: bool = False) -> None:
        # fresh: the new wrapper does not take the old file's owner, mode and SELinux context (the default one)
        module.atomic_move(src, dest, keep_dest_attrs=not fresh)

    try:
        apply(result, p["state"], p["path"], p["binary"], p["options"], p["extra_args"],
              run_reporting_os_errors(run_with_timeout),
              module.check_mode, module._diff, backup_file if p["backup"] else None, move,
              module.warn, p["force"])
    except (WrapperError, VirtiofsdError) as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
