# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The decisions of the role ``virtiofs.libvirt.guest``, in plain Python.

Private module_utils: other collections must not import it.

No Ansible imports: the filters ``guest_plan``, ``guest_refusals`` and ``guest_mount_failures``
hand the role's variables and results to these functions.

- :func:`guest_plan`: the role's input, checked and normalised (every problem at once).
- :func:`refusals`: what the role refuses on the guest before the first change (from the
  shares as ``guest_info`` joined them, see ``_guest.join``).
- :func:`mount_failures`: failed mounts, told apart into tags the guest is not offered and
  other errors.

The choices of the role's ``meta/argument_specs.yml`` are enforced there, not here.
Unit-tested in tests/unit/plugins/module_utils/test__guest_plan.py.
"""

from __future__ import annotations

import posixpath
import re
import typing as t
from collections.abc import Mapping

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import tag_error
from ansible_collections.virtiofs.libvirt.plugins.module_utils._host_plan import ansible_typed, quoted, text, to_bool

FAILURE_HEADING = "virtiofs.libvirt.guest: invalid input, nothing was changed:"

DAX_HINT = ("DAX needs a DAX window that QEMU with the Rust virtiofsd does not provide, so the mount would fail with EINVAL;"
            " remove it from options")

# The states that write the fstab line and need the tag to be valid.
WRITING_STATES = ("mounted", "present")

_CONTEXT_OPTION_RE = re.compile(r"^(context|fscontext|defcontext|rootcontext)=")


def _path_error(path: str, earlier: t.Sequence[str]) -> t.Optional[str]:
    if path == "":
        return "path is missing; set the absolute mount point, e.g. /mnt/share"
    # whitespace first: the fix of "must be absolute" would be refused for it
    if re.search(r"[\s\\&#]", path):
        return "path must not contain whitespace, backslash, & or # (fstab escaping); choose a plain path"
    if not path.startswith("/"):
        return f"path must be absolute, e.g. /{path}"
    if path != posixpath.normpath(path) or path.startswith("//"):
        return f"path is not normalised; write {re.sub('^/+', '/', posixpath.normpath(path))} instead"
    if path == "/":
        return "path / cannot be the mount point of a share; use a directory such as /mnt/share"
    if path in earlier:
        return "path is used by an earlier entry; each mount point may appear only once"
    return None


def mount_problems(mount: t.Mapping[t.Any, t.Any], earlier_paths: t.Sequence[str], default_options: t.Any = "defaults,nofail",
                   default_mode: t.Any = "0755", check_tag: bool = True) -> t.Tuple[t.List[str], t.Dict[str, t.Any]]:
    """The problems of one entry of ``virtiofs_guest_mounts`` (a dict), each a sentence that starts
    with the key it is about (tag, path, options, selinux_context), and the entry normalised: tag,
    path, state, options (the fstab field, with nofail, x-systemd.automount and context= as asked),
    automount, owner, group and mode. ``earlier_paths``: the paths of the entries before it;
    ``check_tag=False`` leaves the tag to the caller (the host role checks it with its own words)."""
    problems: t.List[str] = []
    # A tag that is not a string (tag: 0, tag: 12) is not "missing": tag_error says to quote it.
    tag = "" if mount.get("tag") is None else mount["tag"]
    path = text(mount.get("path"))
    state = text(mount.get("state"), "mounted")
    if not check_tag:
        pass
    elif isinstance(tag, str) and tag == "":
        problems.append("tag is missing or empty; set it to the <target dir> of the share in the domain XML")
    else:
        problem = tag_error(tag, strict=state in WRITING_STATES)
        if problem:
            problems.append(f"{problem} (here and in the domain XML)")
    problem = _path_error(path, earlier_paths)
    if problem:
        problems.append(problem)
    raw_opts = text(mount.get("options"), default_options)
    opts = [o.strip() for o in raw_opts.split(",") if o.strip() != ""]
    dax = [o for o in opts if re.match(r"^dax($|=)", o)]
    # null is the default, as for every other key
    nofail = True if mount.get("nofail") is None else to_bool(mount["nofail"])
    automount = False if mount.get("automount") is None else to_bool(mount["automount"])
    context = text(mount.get("selinux_context"))
    if re.search(r"\s", raw_opts):
        problems.append(f"options {quoted(raw_opts)} contain whitespace; separate options with commas only")
    if dax:
        problems.append(f"options {quoted(raw_opts)} contain {dax[0]}: {DAX_HINT}")
    if context != "" and re.search(r"[\s\"']", context):
        problems.append("selinux_context must not contain whitespace or quotes, e.g. system_u:object_r:httpd_sys_content_t:s0")
    if context != "" and any(_CONTEXT_OPTION_RE.match(o) for o in opts):
        problems.append("selinux_context and a context option in options are both set; keep only one")
    # imported here: _share is large
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._share import mode_error
    problem = mode_error(str(tag), mount.get("mode"), "of the mount point directory", prefix="mode")
    if problem:
        problems.append(problem)
    if not nofail:
        opts = [o for o in opts if o != "nofail"]
    elif "nofail" not in opts:
        opts.append("nofail")
    if automount and "x-systemd.automount" not in opts:
        opts.append("x-systemd.automount")
    if context != "":
        opts.append(f'context="{context}"')
    opts = opts or ["defaults"]
    return problems, {
        "tag": tag,
        "path": path,
        "state": state,
        "options": ",".join(opts),
        "automount": "x-systemd.automount" in opts,
        "owner": mount.get("owner"),
        "group": mount.get("group"),
        "mode": default_mode if mount.get("mode") is None or mount.get("mode") == "" else mount["mode"],
    }


def guest_plan(mounts: t.Any, default_options: t.Any = "defaults,nofail", default_mode: t.Any = "0755") -> t.Dict[str, t.Any]:
    """``virtiofs_guest_mounts`` checked and normalised. Returns errors (one line per problem),
    failure (the message the role fails with, or None) and mounts: the entries normalised by
    :func:`mount_problems`."""
    errors: t.List[str] = []
    out: t.List[t.Dict[str, t.Any]] = []
    paths: t.List[str] = []
    for index, mount in enumerate(mounts or []):
        where = f"virtiofs_guest_mounts[{index}]"
        if not isinstance(mount, Mapping):
            errors.append(f"{where}: must be a dict with at least tag and path, got {mount}")
            continue
        # typed as the role's argument spec declares the keys, so that the bools mean what it accepted
        typed, typing = ansible_typed({k: v for k, v in MOUNT_KEY_SPEC.items() if k not in ("tag", "path")}, mount)
        problems, entry = mount_problems(typed, paths, default_options, default_mode)
        where = f"{where} (tag {quoted(entry['tag'])}, path {quoted(entry['path'])})"
        errors.extend(f"{where}: {problem}" for problem in [p for _k, p in typing] + problems)
        paths.append(entry["path"])
        out.append(entry)
    return {"errors": errors, "failure": [FAILURE_HEADING] + errors if errors else None, "mounts": out}


def refusals(shares: t.Sequence[t.Mapping[str, t.Any]], tags: t.Optional[t.Sequence[str]]) -> t.List[str]:
    """What the role refuses before any change, one sentence each: a non-virtiofs fstab line or
    mount on a managed path, and (where the kernel lists its tags, ``tags`` is not None) a tag
    to mount that the guest is not offered. ``shares`` are the shares as ``guest_info`` joined them."""
    msgs = []
    for share in shares:
        lines = [str(e.get("line")) for e in share.get("fstab", []) if e.get("fstype") != "virtiofs"]
        if share.get("state") in ("mounted", "present", "absent") and lines:
            msgs.append(f"/etc/fstab already has a line for {share.get('path')} that is not virtiofs ({' | '.join(lines)})."
                        " This role only manages virtiofs lines: remove that line yourself or choose another path.")
        foreign = share.get("foreign") or []
        if foreign:
            msgs.append(f"{share.get('path')} is a mount point of {', '.join(str(m.get('fstype')) for m in foreign)}"
                        f" ({', '.join(str(m.get('source')) for m in foreign)}), not of virtiofs."
                        " Unmount it yourself or choose another path.")
        if share.get("state") == "mounted" and tags is not None and share.get("tag") not in tags and not share.get("same"):
            msgs.append(f"tag {share.get('tag')} not offered to this guest: is the share defined and the domain restarted?"
                        " (the kernel lists the tags of its virtio-fs devices in /sys/fs/virtiofs: "
                        f"{', '.join(str(x) for x in tags) or 'none'}; a share added to the persistent domain definition"
                        " only appears after a full shutdown and start of the domain.)")
    return msgs


def mount_failures(failed_result: t.Mapping[str, t.Any], dmesg_before: str, dmesg_after: str,
                   tags: t.Optional[t.Sequence[str]], share_key: str = "_virtiofs_guest_share") -> t.List[t.Dict[str, t.Any]]:
    """The failed mounts of ``failed_result`` (a looped task's result, or one task's), each with
    share (the loop item, ``share_key``), error (the message on one line) and not_offered: the
    kernel lists its tags and this one is not among them, or it logged
    ``virtio-fs: tag <TAG> not found`` more often in ``dmesg_after`` than in ``dmesg_before``."""
    results = failed_result["results"] if "results" in failed_result else [failed_result]
    out = []
    for result in results:
        if not result.get("failed", False):
            continue
        share = result.get(share_key, {"tag": "?", "path": "?", "options": "?"})
        marker = f"virtio-fs: tag <{share.get('tag')}> not found"
        before, after = (dmesg_before or "").count(marker), (dmesg_after or "").count(marker)
        out.append({
            "share": share,
            "error": re.sub(r"\s+", " ", str(result.get("msg", "unknown error"))).strip(),
            "not_offered": share_key in result and (after > before or (tags is not None and share.get("tag") not in tags)),
        })
    return out


# The mount_* keys of a host role share entry that become keys of a guest role mount.
SHARE_MOUNT_KEYS = ("options", "owner", "group", "mode", "automount", "nofail", "selinux_context")

# The states of a mount (the choices of the role's ``state``).
MOUNT_STATES = ("mounted", "present", "unmounted", "absent")

# The Ansible types of the keys of an entry of ``virtiofs_guest_mounts`` (the role's argument spec
# declares the same; a unit test compares them). The host role types its ``mount*`` keys with them.
MOUNT_KEY_SPEC: t.Dict[str, t.Dict[str, t.Any]] = {
    "tag": {"type": "str"},
    "path": {"type": "str"},
    "state": {"type": "str", "choices": list(MOUNT_STATES)},
    "options": {"type": "str"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
    "mode": {"type": "raw"},
    "automount": {"type": "bool"},
    "nofail": {"type": "bool"},
    "selinux_context": {"type": "str"},
}


def host_share_keys() -> t.Tuple[str, ...]:
    """The keys of a host role share entry that :func:`mounts_from_host_shares` reads for the guest
    (besides domain, tag and state): mount, mount_path, mount_state and mount_<key> of
    :data:`SHARE_MOUNT_KEYS`. The host role accepts them in ``virtiofs_host_shares``."""
    return ("mount", "mount_path", "mount_state") + tuple(f"mount_{key}" for key in SHARE_MOUNT_KEYS)


def host_share_key_spec() -> t.Dict[str, t.Dict[str, t.Any]]:
    """The Ansible types of :func:`host_share_keys` (``mount`` is a bool, ``mount_<key>`` has the type of
    the guest role's ``<key>``)."""
    spec: t.Dict[str, t.Dict[str, t.Any]] = {"mount": {"type": "bool"}}
    for key in ("path", "state") + SHARE_MOUNT_KEYS:
        spec[f"mount_{key}"] = dict(MOUNT_KEY_SPEC[key])
    return spec


def mounts_from_host_shares(shares: t.Any, domain: str) -> t.List[t.Dict[str, t.Any]]:
    """The guest role's mounts for ``domain`` from a hypervisor's ``virtiofs_host_shares``
    (``playbooks/guest.yml``): every share entry of that domain with a tag and without
    ``mount: false``, at ``mount_path`` (default ``/mnt/<tag>``), ``mount_state`` (default
    ``mounted``, ``absent`` for an absent share) and the given ``mount_<key>`` of
    :data:`SHARE_MOUNT_KEYS`. Entries that are not mappings are left to the host role's checks.
    """
    mounts = []
    for share in shares or []:
        if not isinstance(share, Mapping) or share.get("domain", "") != domain:
            continue
        if (share.get("mount") is not None and not to_bool(share["mount"])) or not share.get("tag"):
            continue
        mounts.append(mount_from_host_share(share))
    return mounts


def mount_from_host_share(share: t.Mapping[t.Any, t.Any]) -> t.Dict[str, t.Any]:
    """The guest role's mount of one host role share entry (a dict with a tag): at ``mount_path``
    (default ``/mnt/<tag>``), ``mount_state`` (default ``mounted``, ``absent`` for an absent share),
    with the given ``mount_<key>`` of :data:`SHARE_MOUNT_KEYS`."""
    absent = (share.get("state") or "present") == "absent"
    mount = {"tag": share["tag"], "path": share.get("mount_path") or f"/mnt/{share['tag']}",
             "state": share.get("mount_state") or ("absent" if absent else "mounted")}
    for key in SHARE_MOUNT_KEYS:
        if share.get(f"mount_{key}") is not None:
            mount[key] = share[f"mount_{key}"]
    return mount
