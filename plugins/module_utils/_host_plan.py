# Copyright (c) virtiofs.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The plan of the role ``virtiofs.libvirt.host``, computed once from the role's variables.

Private module_utils: other collections must not import it.

Plain Python (no Ansible imports): the filter ``virtiofs.libvirt.host_plan`` hands it the role
variables as a dict, the role's task files then read fields of the plan. Every input problem is
collected, with the entry it is in and the fix, before anything on the host is read or changed.
The choices the role's ``meta/argument_specs.yml`` declares are enforced there, not here.
Unit-tested in tests/unit/plugins/module_utils/test__host_plan.py.
"""

from __future__ import annotations

import difflib
import json
import posixpath
import re
import typing as t
from collections.abc import Mapping

from ansible_collections.virtiofs.libvirt.plugins.module_utils._domain_xml import DomainXMLError, ShareSpec, tag_error
from ansible_collections.virtiofs.libvirt.plugins.module_utils._path_safety import root_source_error
from ansible_collections.virtiofs.libvirt.plugins.module_utils._share_options import (
    SOURCE, TABLE as SHARE_OPTIONS, share_argument_spec)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd_options import (
    OPTIONS as WRAPPER_OPTIONS, check_without_daemon, profile_values)

# The keys of a wrapper profile (virtiofs_host_wrappers.NAME).
WRAPPER_KEYS = ("path", "options", "extra_args", "state", "backup")

# The keys of a share entry the role reads itself (the rest goes to the share module or, for the
# mount keys, to the guest role through playbooks/guest.yml).
ROLE_SHARE_KEYS = ("domain", "wrapper", "create_source", "source_owner", "source_group", "source_mode")

# The share module's options for a source directory to create, under the names the role gives them
# (the role sets owner, group and mode of the module from source_owner, ... and its defaults).
RENAMED_SHARE_KEYS = {o.name: f"source_{o.name}" for o in SHARE_OPTIONS if o.kind == SOURCE and o.name != "create_source"}

# Directories the distribution's packages own: a wrapper or daemon written there could be replaced by a
# package upgrade, or replace a packaged program (the distribution's /usr/libexec/virtiofsd).
PACKAGE_DIRS = ("/bin", "/sbin", "/lib", "/lib64", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64", "/usr/libexec",
                "/usr/share")

# What a guest must not be able to write: a share of one of these (or of a directory above one) with write access
# would let the guest change what root runs or reads on the hypervisor. The distribution's daemons are in
# PACKAGE_DIRS (/usr/libexec/virtiofsd, /usr/lib/qemu/virtiofsd).
SYSTEM_DIRS = PACKAGE_DIRS + ("/etc", "/root", "/boot", "/var/spool/cron", "/var/lib/libvirt")

# The facts the role sets (documented in meta/argument_specs.yml); a later run of the role sees them as
# variables of its own prefix.
ROLE_FACTS = ("virtiofs_host_virtiofsd_path", "virtiofs_host_virtiofsd_installed_version", "virtiofs_host_wrapper_argv",
              "virtiofs_host_share_results", "virtiofs_host_restart_required", "virtiofs_host_restart_reasons",
              "virtiofs_host_restarted", "virtiofs_host_apparmor_files")

# Characters AppArmor reads as patterns in a rule, or that cannot be quoted in one (and NUL, newline).
_PATH_CHARS_RE = re.compile(r'[*?\[\]{}^"\\\x00-\x1f\x7f]')

_PROFILE_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

# The role's default virtiofs_host_virtiofsd_binary_name.
DEFAULT_BINARY_NAME = "virtiofsd"


def install_dir_error(install_dir: str) -> t.Optional[str]:
    """Why virtiofs_host_virtiofsd_install_dir is not an absolute, normalised path, or None."""
    if not install_dir.startswith("/") or install_dir != posixpath.normpath(install_dir) or install_dir.startswith("//"):
        example = posixpath.normpath("/" + install_dir.lstrip("/~."))
        return (f"virtiofs_host_virtiofsd_install_dir {quoted(install_dir)} "
                "must be an absolute, normalised path (e.g."
                f" {example if example != '/' else '/opt/virtiofsd-rust'})")
    return None


# Ansible's bool filter: these strings (any case) and 0/1/True/False; anything else is value == 1.
_TRUE = frozenset(("yes", "on", "true", "1"))
_FALSE = frozenset(("no", "off", "false", "0"))


# Spellings of a bool that ansible-core's argument spec reads as true/false and its bool filter (the tasks'
# ``| bool``, :func:`to_bool`) as false: refused, so that every reader of a value agrees.
AMBIGUOUS_BOOLS = frozenset(("y", "t", "n", "f"))

# How a message names what an Ansible type wants.
_TYPE_WORDS = {"bool": "true or false", "int": "a whole number, e.g. 4", "float": "a number", "str": "a string",
               "path": "a path (a string)", "dict": "a dict", "list": "a list", "raw": "a value"}


def package_dir(path: str) -> t.Optional[str]:
    """The directory of :data:`PACKAGE_DIRS` that ``path`` is in (or is), or None."""
    for directory in PACKAGE_DIRS:
        if path == directory or path.startswith(directory + "/"):
            return directory
    return None


def package_dir_problem(what: str, path: str) -> t.Optional[str]:
    """Why ``what`` at ``path`` must not be in a directory the packages own, or None."""
    directory = package_dir(path)
    if directory is None:
        return None
    return (f"{what} {path} is in {directory}, which the distribution's packages own: a package upgrade could"
            " replace it, or it could replace a packaged program (such as /usr/libexec/virtiofsd); use a directory of"
            " your own, e.g. /usr/local/libexec or /opt/virtiofsd-rust")


def unknown_variable_errors(names: t.Iterable[t.Any], known: t.Iterable[t.Any]) -> t.List[str]:
    """One message per ``virtiofs_host_*`` variable in ``names`` that is neither a role variable
    (``known``: the options of the role's argument spec) nor a fact the role sets (:data:`ROLE_FACTS`),
    with the close match: a misspelt variable is otherwise ignored and its default used."""
    accepted = sorted({str(k) for k in known} | set(ROLE_FACTS))
    errors = []
    # virtiofs_hosts_* too: a plural typo of the prefix
    for name in sorted({str(n) for n in names if str(n).startswith(("virtiofs_host_", "virtiofs_hosts_"))} - set(accepted)):
        close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.8)
        hint = f"did you mean {close[0]}?" if close else "see the role's variables (ansible-doc -t role virtiofs.libvirt.host)"
        errors.append(f"unknown variable {name}: the host role has no such variable, so a value meant for it is ignored; {hint}"
                      " (rename it; a variable of your own needs a name without the role's prefix virtiofs_host_)")
    return errors


def ansible_typed(spec: t.Mapping[str, t.Mapping[str, t.Any]], values: t.Mapping[t.Any, t.Any]
                  ) -> t.Tuple[t.Dict[t.Any, t.Any], t.List[t.Tuple[str, str]]]:
    """``values`` typed key by key as ansible-core's argument spec validator types a module's options
    with ``spec`` (``"4"`` and ``4.0`` for an int, ``yes`` for a bool, ``a,b`` for a list; choices
    checked), and the problems: (key, sentence naming the key, the type or choices and the value).
    Keys ``spec`` does not know, ``None`` values and values of type ``path`` stay as given (``path``
    would expand ``~`` and variables; the callers check paths themselves)."""
    # imported here: this module is otherwise plain Python
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible.module_utils.errors import ArgumentTypeError, ArgumentValueError

    out = dict(values)
    problems: t.List[t.Tuple[str, str]] = []
    for key, value in values.items():
        if key not in spec or value is None:
            continue
        one = {k: v for k, v in spec[key].items() if k not in ("required", "default", "aliases")}
        if str(value) == "<<Omit>>" or str(value).startswith("__omit_place_holder__"):
            problems.append((key, f"{key} is omit, which Ansible only applies to a module's or task's own options, not"
                                  " to a key inside a variable; use default(none) instead (null means the default)"))
            continue
        if one.get("type", "str") in ("str", "path") and isinstance(value, (Mapping, list, tuple, set)):
            # Ansible would turn [a] into the string "['a']"
            problems.append((key, f"{key} must be a string, got {quoted(value)}"))
            continue
        if one.get("type") == "bool" and isinstance(value, str) and value.strip().lower() in AMBIGUOUS_BOOLS:
            if value.strip().lower() in ("y", "t"):
                why = f"Ansible's argument check reads {value.strip()} as true, its bool filter as false"
            else:
                why = f"Ansible's bool filter does not know {value.strip()} (an error from ansible-core 2.23)"
            problems.append((key, f"{key} must be true or false, got {quoted(value)} ({why}: write true or false)"))
            continue
        if one.get("type", "str") in ("str", "path") and isinstance(value, float):
            problems.append((key, f"{key} {value} is a number in YAML (1.10 is read as 1.1); quote it"))
            continue
        if one.get("type") in ("int", "float") and isinstance(value, bool):
            problems.append((key, f"{key} must be {_TYPE_WORDS[one['type']]}, got {quoted(value)}"))
            continue
        result = ArgumentSpecValidator({key: one}).validate({key: value})
        if not result.error_messages:
            if one.get("type", "str") != "path":
                out[key] = result.validated_parameters[key]
            continue
        kinds = {type(e) for e in result.errors.errors}
        if ArgumentTypeError in kinds:
            problems.append((key, f"{key} must be {_TYPE_WORDS.get(one.get('type', 'str'), one.get('type'))},"
                                  f" got {quoted(value)}"))
        elif ArgumentValueError in kinds and one.get("choices"):
            problems.append((key, f"{key} must be one of {', '.join(str(c) for c in one['choices'])}, got {quoted(value)}"))
        else:
            problems.append((key, f"{key}: " + "; ".join(_unique(result.error_messages))))
    return out, problems


def module_typed_options(options: t.Mapping[t.Any, t.Any]) -> t.Dict[t.Any, t.Any]:
    """A wrapper profile's ``options`` as the virtiofsd_wrapper module's argument spec hands them to
    the option table (ansible-core's own validator with the module's spec, :func:`ansible_typed`). A
    value it cannot convert, and an unknown key, stay as given: the option check then names them."""
    # imported here: the wrapper module's spec is built from the option table
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd_options import argument_spec

    return ansible_typed(argument_spec(), options)[0]


def to_bool(value: t.Any) -> bool:
    """What Ansible's ``bool`` filter makes of ``value``."""
    check = value.lower() if isinstance(value, str) else str(value).lower() if isinstance(value, int) else value
    try:
        if check in _TRUE:
            return True
        if check in _FALSE:
            return False
        return bool(check == 1)
    except TypeError:
        return False


def text(value: t.Any, fallback: t.Any = "") -> str:
    """``value`` as text, ``fallback`` when it is missing or empty (Jinja's ``default(x, true) | string``)."""
    return str(value if value else fallback)


def quoted(value: t.Any) -> str:
    """``value`` in JSON, as the messages quote values (Ansible's ``to_json``)."""
    return json.dumps(value, default=str)


def is_list(value: t.Any) -> bool:
    """A list of values: iterable, and neither text nor a dict."""
    if isinstance(value, (str, bytes, Mapping)):
        return False
    try:
        iter(value)
    except TypeError:
        return False
    return True


def share_error(share: t.Any) -> str:
    """Why the share module would refuse one entry of its ``shares`` option, or ``""``: the
    first of :func:`share_problems`."""
    problems = share_problems(share)
    return problems[0] if problems else ""


def share_problems(share: t.Any, type_share: t.Optional["TypeOptions"] = None) -> t.List[str]:
    """Every reason why the share module would refuse one entry of its ``shares`` option: the
    module's own checks (``ShareSpec.problems``, the checks of ``ShareSpec.validate``), before any
    domain is read, and the mode of a source it creates (``_share.mode_error``). ``type_share``
    types the values as the module's argument spec would (default: ansible-core's validator with the share module's spec)."""
    # imported here: _share imports libvirt-free parts only, but it is large
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._share import mode_error

    if not isinstance(share, Mapping):
        return [f"a share must be a dict (tag, source, ...), got {share!r}"]
    if type_share is None:
        # converted as the module's argument spec converts ("4", 4.0 -> 4; "yes" -> true); a value it cannot
        # convert stays as given and ShareSpec names it with its own words (and libvirt's choices)
        spec = {key: {k: v for k, v in option.items() if k not in ("choices", "options")}
                for key, option in share_argument_spec(entry=True).items()}
        params, typing = ansible_typed(spec, share)
        # ShareSpec checks the integers, strings and choices itself, not the type of a bool or a dict
        problems = [f"share {str(params.get('tag'))!r}: {problem}" for key, problem in typing
                    if spec[key].get("type") in ("bool", "dict")]
        if problems:
            return problems
    else:
        params = type_share(share)
    try:
        spec = ShareSpec.from_params(params)
    except DomainXMLError as exc:
        return [str(exc)]
    problems = list(spec.problems())
    if params.get("create_source") and spec.state == "present":
        problem = mode_error(spec.tag, params.get("mode"))
        if problem:
            problems.append(problem)
    return problems


def own_share_keys(role_share_keys: t.Collection[str] = ()) -> t.List[str]:
    """The keys of a ``virtiofs_host_shares`` entry the roles read themselves and never hand to the share
    module: :data:`ROLE_SHARE_KEYS`, the guest role's mount keys (``_guest_plan.host_share_keys``) and
    any further ``role_share_keys``."""
    # imported here: _guest_plan imports this module
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import host_share_keys

    return _unique(list(ROLE_SHARE_KEYS) + list(host_share_keys()) + [str(k) for k in role_share_keys])


def accepted_share_keys(role_share_keys: t.Collection[str] = ()) -> t.List[str]:
    """The keys a ``virtiofs_host_shares`` entry may have, sorted: the share module's per-share
    options (``_share_options.TABLE``; owner, group and mode under the role's names source_owner,
    source_group and source_mode: :data:`RENAMED_SHARE_KEYS`), the keys the role reads itself (:data:`ROLE_SHARE_KEYS` and
    ``role_share_keys``) and the guest role's mount keys (``_guest_plan.host_share_keys``)."""
    keys = {o.name for o in SHARE_OPTIONS} | set(own_share_keys(role_share_keys))
    return sorted(keys - set(RENAMED_SHARE_KEYS))


def share_entry_spec() -> t.Dict[str, t.Dict[str, t.Any]]:
    """The Ansible type (and choices) of every key of a ``virtiofs_host_shares`` entry: the share
    module's per-share spec (``owner``, ``group``, ``mode`` under the role's names), ``domain`` and
    ``wrapper`` (strings) and the guest keys (``_guest_plan.host_share_key_spec``). The role's
    ``meta/argument_specs.yml`` documents the same types (a unit test compares them); the plan checks
    them, since the argument spec leaves the variable's type open (raw) to let the plan name the entry."""
    # imported here: _guest_plan imports this module
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import host_share_key_spec

    spec = {RENAMED_SHARE_KEYS.get(name, name): dict(option) for name, option in share_argument_spec(entry=True).items()}
    spec["domain"] = {"type": "str"}
    spec["wrapper"] = {"type": "str"}
    spec.update(host_share_key_spec())
    return spec


# Keys of a share entry whose values the plan checks with its own words (tag_error, absolute paths).
_OWN_WORDS_KEYS = ("tag", "source", "binary_path")


def unknown_key_errors(where: str, keys: t.Iterable[t.Any], accepted: t.Sequence[str]) -> t.List[str]:
    """One message per key of ``keys`` not in ``accepted``: the close match, else the accepted keys."""
    errors = []
    for key in _unique(k for k in keys if k not in accepted):
        if key in RENAMED_SHARE_KEYS:
            errors.append(f"{where}: unknown key {quoted(key)}; the host role calls it {RENAMED_SHARE_KEYS[key]}"
                          " (the owner, group and mode of a source it creates with create_source: true)")
            continue
        close = difflib.get_close_matches(str(key), accepted, n=1, cutoff=0.75)
        if close:
            errors.append(f"{where}: unknown key {quoted(str(key))}; did you mean {close[0]}?")
        else:
            errors.append(f"{where}: unknown key {quoted(str(key))}; a share entry accepts {', '.join(accepted)}")
    return errors


def _unique(values: t.Iterable[t.Any]) -> t.List[t.Any]:
    out: t.List[t.Any] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


TypeOptions = t.Callable[[t.Mapping[t.Any, t.Any]], t.Dict[t.Any, t.Any]]


def plan_wrappers(wrappers: t.Any, install_dir: str, binary_name: str, virtiofsd_state: str,
                  type_options: TypeOptions = module_typed_options) -> t.Tuple[t.List[str], t.List[t.Dict[str, t.Any]]]:
    """The problems of ``virtiofs_host_wrappers`` and its profiles, normalised: name, path,
    state (absent for every profile when the daemon is removed), options, extra_args, backup.
    ``type_options`` types a profile's options as the wrapper module's argument spec would before
    they are checked (the filter passes Ansible's own validator; the default is
    :func:`module_typed_options`)."""
    if not isinstance(wrappers, Mapping):
        hint = (" (a string: with -e, pass the dict as JSON, -e '{\"virtiofs_host_wrappers\": {...}}')"
                if isinstance(wrappers, str) else "")
        return [f"virtiofs_host_wrappers must be a dict of profile name -> {{path, options}}, got {wrappers}{hint}"], []
    daemon = f"{install_dir}/{binary_name}"
    # a bad install directory is reported once under its own name (install_dir_error); the paths
    # derived from it (the default profile's) are not reported again
    bad_dir = (install_dir_error(install_dir) is not None or package_dir(install_dir) is not None or install_dir == "/"
               or _PATH_CHARS_RE.search(install_dir) is not None)
    errors: t.List[str] = []
    out: t.List[t.Dict[str, t.Any]] = []
    paths: t.List[str] = []
    for name, profile in wrappers.items():
        where = f"virtiofs_host_wrappers.{name}"
        if not _PROFILE_NAME_RE.match(str(name)):
            errors.append(f"{where}: profile names may only contain letters, digits, . _ -")
        if not isinstance(profile, Mapping):
            errors.append(f"{where}: must be a dict with at least path, got {profile}")
            continue
        path = text(profile.get("path"))
        state = "absent" if virtiofsd_state == "absent" else text(profile.get("state"), "present")
        if path == "":
            errors.append(f"{where}: path is missing; set the absolute path of the wrapper, e.g. {install_dir}/virtiofsd-{name}.sh")
        elif bad_dir and path.startswith(install_dir):
            pass
        elif not path.startswith("/") or path != posixpath.normpath(path) or path.startswith("//"):
            errors.append(f"{where}: path {quoted(path)} must be an absolute, normalised path")
        elif _PATH_CHARS_RE.search(path):
            errors.append(f"{where}: path {quoted(path)} contains a character AppArmor reads as a pattern or cannot quote"
                          " (* ? [ ] { } ^ \" \\, a control character); rename it")
        elif path == "/" or _under(install_dir, path):
            errors.append(f"{where}: path {path} is the install directory {install_dir} or a directory above it; give the"
                          f" wrapper a file of its own, e.g. {install_dir}/virtiofsd-{name}.sh")
        elif package_dir(path) is not None:
            errors.append(f"{where}: {package_dir_problem('path', path)}")
        elif path == daemon and binary_name != DEFAULT_BINARY_NAME:
            errors.append(f"{where}: path {path} is where virtiofs_host_virtiofsd_binary_name {quoted(binary_name)} puts the"
                          " daemon; give the wrapper its own file name"
                          f" (e.g. {posixpath.dirname(path)}/virtiofsd-{name}.sh)"
                          " or set another binary_name")
        elif path == daemon:
            errors.append(f"{where}: path {path} is the daemon itself; give the wrapper its own file name, e.g. "
                          f"{posixpath.dirname(path)}/virtiofsd-{name}.sh")
        elif path in paths:
            errors.append(f"{where}: path {path} is used by another profile; each profile needs its own file")
        elif any(_under(path, other) or _under(other, path) for other in paths if other):
            other = next(o for o in paths if o and (_under(path, o) or _under(o, path)))
            errors.append(f"{where}: path {path} and the path {other} of another profile are one inside the other; each"
                          " profile needs its own file in a directory")
        paths.append(path)
        if state not in ("present", "absent"):
            errors.append(f"{where}: state {quoted(state)} is not present or absent")
        options = profile.get("options")
        options_ok = options is None or isinstance(options, Mapping)
        if not options_ok:
            errors.append(f"{where}: options must be a dict of virtiofsd options (e.g. {{inode_file_handles: prefer}}), got {options}")
        extra_args = profile.get("extra_args")
        extra_ok = extra_args is None or is_list(extra_args)
        if not extra_ok:
            errors.append(f'{where}: extra_args must be a list of arguments, e.g. ["--no-readdirplus"]')
        if state == "present":
            # what the wrapper module's option table finds without the daemon (versions stay with the module)
            errors.extend(f"{where}: {problem}" for problem in check_without_daemon(
                type_options(options) if options_ok and options else None, list(extra_args) if extra_ok and extra_args is not None else None))
        unknown = _unique(key for key in profile if key not in WRAPPER_KEYS)
        if unknown:
            keys = ", ".join(str(k) for k in unknown)
            errors.append(f"{where}: unknown keys {keys}; a profile has path, options, extra_args, state and backup")
        # typed as the wrapper module's bool option types it (yes/no, on/off, 1/0, ...)
        typed, typing = ansible_typed({"backup": {"type": "bool"}}, {"backup": profile.get("backup")})
        errors.extend(f"{where}: {problem}" for _key, problem in typing)
        backup = typed["backup"]
        out.append({"name": name, "path": path, "state": state, "options": options or {}, "extra_args": extra_args or [],
                    "backup": backup is True})
    return errors, out


def guest_mount_problems(share: t.Mapping[t.Any, t.Any], earlier_paths: t.List[str]) -> t.List[str]:
    """What the guest role (``playbooks/guest.yml``) would refuse in the mount of one share entry
    (typed, with a string tag), in the entry's own key names (mount_path, mount_options,
    mount_selinux_context): the guest role's checks (``_guest_plan.mount_problems``), before anything
    changes on the hypervisor. ``earlier_paths``: the mount paths of the domain's earlier entries
    (this entry's is added). Nothing for ``mount: false`` or a share without a tag."""
    # imported here: _guest_plan imports this module
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._guest_plan import mount_from_host_share, mount_problems

    if share.get("mount") is False or not isinstance(share.get("tag"), str) or share.get("tag") == "":
        return []
    mount = mount_from_host_share(share)
    problems, entry = mount_problems(mount, earlier_paths, check_tag=False)
    default = "" if share.get("mount_path") else " (the default /mnt/<tag>; set mount_path)"
    earlier_paths.append(entry["path"])
    out = []
    for problem in problems:
        key, _sep, rest = problem.partition(" ")
        if key == "path":
            rest = rest[len(entry["path"]) + 1:] if rest.startswith(entry["path"] + " ") else rest
            problem = f"mount_path {quoted(entry['path'])}{default} {rest}"
        elif key in ("options", "selinux_context", "mode"):
            problem = f"mount_{problem}".replace(" a context option in options ", " a context option in mount_options ")
        out.append(problem)
    return out


def _under(path: str, directory: str) -> bool:
    """``path`` is ``directory`` or below it (both absolute, normalised)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def plan_shares(shares: t.Any, wrappers: t.Sequence[t.Mapping[str, t.Any]], default_wrapper: str,
                role_share_keys: t.Collection[str], source_owner: t.Any, source_group: t.Any,
                source_mode: t.Any, type_options: TypeOptions = module_typed_options,
                type_share: t.Optional[TypeOptions] = None, daemon: str = "", daemon_removed: bool = False,
                install_dir: str = "") -> t.Tuple[t.List[str], t.List[t.Dict[str, t.Any]]]:
    """The problems of ``virtiofs_host_shares`` and its entries, normalised: domain, tag, state,
    source, binary_path (the wrapper's path unless set) and module (the entry for the share module:
    the keys the role does not consume and that are not null, binary_path, and the create_source settings).
    ``type_options`` types a profile's options (see :func:`plan_wrappers`), ``type_share`` a share
    entry's values as the share module's argument spec would (see :func:`share_problems`); ``daemon``
    (removed when ``daemon_removed``) and ``install_dir``: the daemon the role installs and its directory,
    which a share must neither run once removed nor expose to a guest."""
    if not is_list(shares):
        hint = (" (a string: with -e, pass the list as JSON, -e '{\"virtiofs_host_shares\": [...]}')"
                if isinstance(shares, str) else "")
        return [f"virtiofs_host_shares must be a list of shares ({{domain, tag, source, ...}}), got {shares}{hint}"], []
    present = {w["name"]: w["path"] for w in wrappers if w["state"] == "present"}
    profiles = {w["path"]: w for w in wrappers if w["state"] == "present"}
    removed = {w["path"]: f"wrapper profile {w['name']} is being removed" for w in wrappers if w["state"] == "absent"}
    if daemon_removed and daemon:
        removed[daemon] = "the daemon is being removed (virtiofs_host_virtiofsd_state=absent)"
    # what libvirt runs as root: a guest that can write it would run code as root on the hypervisor
    run_as_root = [p for p in [install_dir, daemon] + [w["path"] for w in wrappers] if p]
    # every share's own binary_path too (a share may expose the program another share runs)
    if is_list(shares):
        run_as_root += [posixpath.normpath(s["binary_path"]) for s in shares if isinstance(s, Mapping)
                        and isinstance(s.get("binary_path"), str) and s["binary_path"].startswith("/")]
    names = [w["name"] for w in wrappers]
    errors: t.List[str] = []
    out: t.List[t.Dict[str, t.Any]] = []
    keys: t.List[t.Tuple[str, str]] = []
    accepted = accepted_share_keys(role_share_keys)
    own = own_share_keys(role_share_keys)
    # the inside of a dict (idmap) is checked by the share module's own words (share_problems), then by its spec
    full_spec = share_entry_spec()
    type_spec = {key: {k: v for k, v in spec.items() if k != "options"}
                 for key, spec in full_spec.items() if key not in _OWN_WORDS_KEYS}
    mount_paths: t.Dict[str, t.List[str]] = {}
    for index, share in enumerate(shares):
        where = f"virtiofs_host_shares[{index}]"
        if not isinstance(share, Mapping):
            errors.append(f"{where}: must be a dict with at least domain, tag and source, got {share}")
            continue
        raw_tag, raw_domain = share.get("tag"), share.get("domain")
        domain, tag = text(raw_domain), "" if raw_tag is None else str(raw_tag)
        where = f"{where} (domain {quoted(domain)}, tag {quoted(tag)})"
        blocking = 0  # problems the share module's own checks would repeat in their words
        errors.extend(unknown_key_errors(where, share, accepted))
        # each value of the types the share module, the role and the guest role declare
        typed, typing = ansible_typed(type_spec, share)
        errors.extend(f"{where}: {problem}" for _key, problem in typing)
        bad_keys = {key for key, _problem in typing}
        state = text(typed.get("state"), "present")
        source = text(share.get("source"))
        if raw_domain is None or raw_domain == "":
            errors.append(f"{where}: domain is missing; set the libvirt domain name the share belongs to")
        elif "domain" not in bad_keys and not isinstance(raw_domain, str):
            kind = "bool" if isinstance(raw_domain, bool) else "number" if isinstance(raw_domain, (int, float)) else "value"
            errors.append(f"{where}: domain {quoted(raw_domain)} is a {kind} in YAML, not a name;"
                          f" quote it (domain: \"{raw_domain}\")")
        elif isinstance(raw_domain, str) and (raw_domain != raw_domain.strip() or re.search(r"[\x00-\x1f\x7f/]", raw_domain)):
            errors.append(f"{where}: domain {quoted(raw_domain)} has leading or trailing blanks, a control character or a /;"
                          " write the libvirt domain name as virsh list --all shows it")
        tag_ok = False
        if raw_tag is None or raw_tag == "":
            errors.append(f"{where}: tag is missing; set the mount tag the guest uses (1-36 bytes)")
        else:
            # a tag that is not text (tag: 12, tag: yes, tag: 1.50) is refused as the guest role refuses it
            problem = tag_error(raw_tag, strict=state != "absent")
            if problem:
                errors.append(f"{where}: {problem}")
            tag_ok = problem is None
        strict_tag_ok = isinstance(raw_tag, str) and raw_tag != "" and tag_error(raw_tag, strict=True) is None
        mounted = typed.get("mount") is not False and "mount" not in bad_keys
        if (domain, tag) in keys:
            errors.append(f"{where}: the same domain and tag appear twice; one entry per share")
        elif tag_ok and mounted and not share.get("mount_path") and not strict_tag_ok:
            # a share being removed may keep a tag the guest cannot write into fstab; its default mount path neither
            errors.append(f"{where}: the guest playbook would unmount this share at /mnt/{tag}, which the guest role refuses"
                          " (the tag is not fit for a path); set mount: false or a mount_path")
        elif share.get("mount_path") or strict_tag_ok:
            # the guest role's checks of the mount, on the keys whose type is right
            errors.extend(f"{where}: {problem}" for problem in guest_mount_problems(
                {k: v for k, v in typed.items() if k not in bad_keys}, mount_paths.setdefault(domain, [])))
        if state == "absent" and typed.get("mount_state") in ("mounted", "present") and mounted:
            errors.append(f"{where}: mount_state {typed['mount_state']} for a share being removed (state: absent): the guest"
                          " is no longer offered the tag; set mount_state: absent (or unmounted), or leave it out")
        keys.append((domain, tag))
        if state == "present" and source == "":
            errors.append(f"{where}: source is missing; set the host directory to share")
            blocking += 1
        elif source != "" and not source.startswith("/"):
            errors.append(f"{where}: source {quoted(source)} must be an absolute path")
            blocking += 1
        elif "\0" in source or "\n" in source:
            errors.append(f"{where}: source {quoted(source)} contains a NUL or a newline; give a plain directory path")
            blocking += 1
        elif state == "present" and root_source_error(source):
            errors.append(f"{where}: {root_source_error(source)}")
        elif state == "present" and not _read_only(typed, profiles.get(
                text(share.get("binary_path")) or present.get(text(share.get("wrapper"), default_wrapper), ""))):
            normal = posixpath.normpath(source)
            exposed = [p for p in run_as_root if _under(p, normal)]
            system = [d for d in SYSTEM_DIRS if _under(normal, d) or _under(d, normal)]
            if system and not exposed:
                errors.append(f"{where}: source {source} is {'in' if _under(normal, system[0]) else 'above'} {system[0]}, which"
                              " root on the hypervisor runs or reads: a guest that can write the share could take over the host;"
                              " share a directory of its own, or set readonly: true")
            if exposed:
                errors.append(f"{where}: source {source} contains {', '.join(_unique(exposed))}, which libvirt runs as root: a"
                              " guest that can write the share could run its own code as root on the hypervisor; share a"
                              " directory that holds no wrapper or daemon")
        binary = text(share.get("binary_path"))
        wrapper = text(share.get("wrapper"), default_wrapper)
        if binary != "" and share.get("wrapper"):
            errors.append(f"{where}: set either wrapper (a profile name) or binary_path, not both")
        elif binary != "" and not binary.startswith("/"):
            errors.append(f"{where}: binary_path {quoted(binary)} must be an absolute path")
            blocking += 1
        elif binary != "" and state == "present" and posixpath.normpath(binary) in removed:
            errors.append(f"{where}: binary_path {binary}: {removed[posixpath.normpath(binary)]} in this run, so the domain would"
                          " point at a program that no longer exists; remove the share too (state: absent) or point it elsewhere")
        elif binary == "" and state == "present":
            if wrapper in present:
                binary = present[wrapper]
            elif wrapper in names:
                errors.append(f"{where}: wrapper profile {wrapper} is being removed (state absent, or"
                              " virtiofs_host_virtiofsd_state=absent); remove the share too (state: absent) or pick another profile")
            else:
                errors.append(f"{where}: wrapper profile {quoted(wrapper)} is not defined in virtiofs_host_wrappers (profiles: "
                              f"{', '.join(str(n) for n in names) or 'none'}); add it or set binary_path")
        # null is the module's default: the key is left out, as if it were not given
        module = {key: value for key, value in share.items() if key not in own and value is not None}
        if binary != "":
            module["binary_path"] = binary
        if state == "present" and typed.get("create_source") is True:
            mode = share.get("source_mode")
            module.update({"create_source": True, "owner": text(share.get("source_owner"), source_owner),
                           "group": text(share.get("source_group"), source_group),
                           "mode": source_mode if mode is None or mode == "" else mode})
        if tag_ok and not blocking:
            # without the keys already reported (a wrong type, an unknown key)
            reported = bad_keys | {key for key in share if key not in accepted}
            checked = {key: value for key, value in module.items() if key not in reported}
            problems = share_problems(dict(checked, tag=tag), type_share)
            if not problems and "idmap" in checked:
                problems = [p for _k, p in ansible_typed({"idmap": full_spec["idmap"]}, {"idmap": checked["idmap"]})[1]]
            errors.extend(f"{where}: {problem}" for problem in problems)
        if state == "present" and binary in profiles:
            errors.extend(f"{where}: {problem}" for problem in profile_overrides(share, profiles[binary], type_options))
        out.append({"domain": domain, "tag": tag, "state": state, "source": source, "binary_path": binary, "module": module})
    return errors, out


def _read_only(share: t.Mapping[t.Any, t.Any], profile: t.Optional[t.Mapping[str, t.Any]]) -> bool:
    """The guest cannot write the share: ``readonly: true`` on it, or its wrapper profile sets virtiofsd's
    ``readonly`` option."""
    if share.get("readonly") is True:
        return True
    options = (profile or {}).get("options")
    # typed as the wrapper module types it ("yes", 1, ...)
    return isinstance(options, Mapping) and module_typed_options(options).get("readonly") is True


def profile_overrides(share: t.Mapping[str, t.Any], profile: t.Mapping[str, t.Any],
                      type_options: TypeOptions = module_typed_options) -> t.List[str]:
    """The options of ``share`` that its wrapper ``profile`` sets too: libvirt passes the share's
    value to the daemon (the option table's ``share_option``), the wrapper's own options come
    after libvirt's arguments (``exec DAEMON "$@" OPTIONS``) and win, so the domain XML and the
    running daemon would disagree. One message per option."""
    options, extra_args = profile.get("options"), profile.get("extra_args")
    values, origins, _problems = profile_values(
        type_options(options) if isinstance(options, Mapping) and options else None,
        list(extra_args) if is_list(extra_args) else None)
    out = []
    for key in values:
        spec = WRAPPER_OPTIONS[key]
        name = spec.share_option
        if name is None or share.get(name) is None:
            continue
        out.append(f"{name} is set here and wrapper profile {quoted(profile['name'])} sets {key} ({origins.get(key, key)}),"
                   f" whose {spec.flag} comes after libvirt's arguments and wins: the domain XML and the running virtiofsd"
                   f" would disagree; set it in one place (remove {name} from the share or {key} from the profile)")
    return out


def install_errors(params: t.Mapping[str, t.Any]) -> t.List[str]:
    """The problems of the virtiofsd installation settings (what method=url and method=source need)."""
    errors = []
    install_dir = str(params.get("virtiofs_host_virtiofsd_install_dir", "/opt/virtiofsd-rust"))
    dir_error = install_dir_error(install_dir)
    if dir_error:
        errors.append(dir_error)
    elif install_dir == "/":
        errors.append("virtiofs_host_virtiofsd_install_dir / is the root directory; use a directory of its own,"
                      " e.g. /opt/virtiofsd-rust")
    elif _PATH_CHARS_RE.search(install_dir):
        errors.append(f"virtiofs_host_virtiofsd_install_dir {quoted(install_dir)} contains a character AppArmor reads as a"
                      " pattern or cannot quote (* ? [ ] { } ^ \" \\, a control character); rename it")
    else:
        problem = package_dir_problem("virtiofs_host_virtiofsd_install_dir", install_dir)
        if problem:
            errors.append(problem)
    apparmor_dir = params.get("virtiofs_host_apparmor_dir")
    if apparmor_dir is not None and not str(apparmor_dir).startswith("/"):
        errors.append(f"virtiofs_host_apparmor_dir {quoted(apparmor_dir)} must be an absolute path, e.g. /etc/apparmor.d")
    for package in params.get("virtiofs_host_extra_packages") or []:
        if not isinstance(package, str) or package.strip() == "" or package.startswith("-"):
            errors.append(f"virtiofs_host_extra_packages: {quoted(package)} is not a package name; list package names only"
                          " (no empty entries or options such as -y)")
    for profile in params.get("virtiofs_host_apparmor_profiles") or []:
        if not isinstance(profile, str) or "/" in profile or profile in ("", ".", ".."):
            errors.append(f"virtiofs_host_apparmor_profiles: {quoted(profile)} must be the file name of a profile in"
                          " virtiofs_host_apparmor_dir (e.g. usr.sbin.libvirtd), without a /")
    for name in ("source_dir", "source_archive", "cargo_registry_dir"):
        value = params.get(f"virtiofs_host_virtiofsd_{name}")
        if value not in (None, "") and not str(value).startswith("/"):
            errors.append(f"virtiofs_host_virtiofsd_{name} {quoted(value)} must be an absolute path on the hypervisor"
                          f" (e.g. /{str(value).lstrip('./')})")
    binary_name = str(params.get("virtiofs_host_virtiofsd_binary_name", DEFAULT_BINARY_NAME))
    if binary_name in ("", ".", "..") or "/" in binary_name or "\0" in binary_name:
        errors.append(f"virtiofs_host_virtiofsd_binary_name {quoted(binary_name)} must be a plain file name (no '/'),"
                      f" e.g. {DEFAULT_BINARY_NAME}; the directory is virtiofs_host_virtiofsd_install_dir")
    present = params.get("virtiofs_host_virtiofsd_state") == "present"
    method = params.get("virtiofs_host_virtiofsd_method")
    if present and method == "url":
        if not params.get("virtiofs_host_virtiofsd_url"):
            errors.append("virtiofs_host_virtiofsd_method=url needs virtiofs_host_virtiofsd_url"
                          " (the release zip, e.g. https://gitlab.com/virtio-fs/virtiofsd/-/releases)")
        if not params.get("virtiofs_host_virtiofsd_checksum"):
            errors.append("virtiofs_host_virtiofsd_method=url needs virtiofs_host_virtiofsd_checksum"
                          " (sha256:<hex> of the archive you reviewed)")
    source_given = (params.get("virtiofs_host_virtiofsd_source_dir") or params.get("virtiofs_host_virtiofsd_source_archive")
                    or params.get("virtiofs_host_virtiofsd_crate_version"))
    if present and method == "source" and not source_given:
        errors.append("virtiofs_host_virtiofsd_method=source needs virtiofs_host_virtiofsd_source_dir,"
                      " virtiofs_host_virtiofsd_source_archive or virtiofs_host_virtiofsd_crate_version")
    if present:
        errors += request_errors(params)
    return errors


# The virtiofsd module's checks that the role's own messages above do not already give.
_REQUEST_CHECKS = ("version", "crate_version", "checksum", "url", "source_dir")


def request_errors(params: t.Mapping[str, t.Any]) -> t.List[str]:
    """The virtiofsd module's own input checks (``_install.Request.input_problems``: version and
    checksum syntax, the url scheme, source_dir with source_archive) on the role's variables, each
    named by its role variable: what the module would refuse after packages were installed."""
    # imported here: the installer is only needed for these checks
    from ansible_collections.virtiofs.libvirt.plugins.module_utils._install import Request

    def given(name: str) -> t.Optional[str]:
        value = params.get(f"virtiofs_host_virtiofsd_{name}")
        return str(value) if value not in (None, "") else None

    request = Request(state="present", method=given("method"), version=given("version"), url=given("url"),
                      checksum=given("checksum"), allow_http=to_bool(params.get("virtiofs_host_virtiofsd_allow_http", False)),
                      crate_version=given("crate_version"), source_dir=given("source_dir"),
                      source_archive=given("source_archive"))
    errors = []
    for option, message in request.input_problems():
        if option in _REQUEST_CHECKS and not message.startswith("method=url needs"):
            # the module's option names in the fix are role variables here
            message = re.sub(r"\b(allow_http|source_archive|source_dir)=", r"virtiofs_host_virtiofsd_\1=", message)
            errors.append(f"virtiofs_host_virtiofsd_{option}: {message}")
    return errors


def share_domains(shares: t.Sequence[t.Mapping[str, t.Any]]) -> t.List[t.Dict[str, t.Any]]:
    """The ``domains`` option of the share module: each domain (sorted by name) with the module
    entries of its shares, in the order of virtiofs_host_shares."""
    return [{"name": name, "shares": [s["module"] for s in shares if s["domain"] == name]}
            for name in sorted(_unique(s["domain"] for s in shares))]


def failure(errors: t.Mapping[str, t.Sequence[str]]) -> t.Any:
    """The message the role fails with, or None: every group of problems. One group of wrapper or
    share problems is a list (a heading, then one line per problem); installation problems alone
    are one string; problems of several groups are one list with a heading per group."""
    groups = [("virtiofs.libvirt.host: bad role variables:", list(errors.get("variables", []))),
              ("virtiofs.libvirt.host: bad wrapper profiles:", list(errors["wrappers"])),
              ("virtiofs.libvirt.host: bad virtiofs_host_shares:", list(errors["shares"])),
              ("virtiofs.libvirt.host: bad virtiofsd installation settings:", list(errors["install"]))]
    found = [(heading, problems) for heading, problems in groups if problems]
    if not found:
        return None
    if len(found) == 1 and found[0][0] == groups[3][0]:
        return "virtiofs.libvirt.host: " + "; ".join(found[0][1])
    out: t.List[str] = []
    for heading, problems in found:
        out += [heading] + problems
    return out


def typed_variables(params: t.Mapping[str, t.Any], role_spec: t.Optional[t.Mapping[str, t.Mapping[str, t.Any]]]
                    ) -> t.Tuple[t.Dict[str, t.Any], t.List[str]]:
    """The role variables typed as the role's argument spec (``role_spec``: its options) declares them,
    and the problems. Ansible's role argument check validates the values but hands them on unconverted
    (``-e virtiofs_host_install_packages=false`` stays the string "false", ``-e
    virtiofs_host_extra_packages=htop`` a string), so the plan and the tasks use these typed values."""
    if role_spec is None:
        return dict(params), []
    spec = {name: {k: v for k, v in option.items() if k in ("type", "choices", "elements")}
            for name, option in role_spec.items() if isinstance(option, Mapping)}
    typed, typing = ansible_typed(spec, params)
    return typed, [problem for _key, problem in typing]


def variable_errors(params: t.Mapping[str, t.Any], variable_names: t.Optional[t.Iterable[t.Any]],
                    known_variables: t.Optional[t.Iterable[t.Any]]) -> t.List[str]:
    """The problems of the role's other variables: unknown ``virtiofs_host_*`` names (when the caller
    passes ``variable_names`` and ``known_variables``, see :func:`unknown_variable_errors`) and a
    negative ``virtiofs_host_restart_timeout``."""
    errors = []
    if variable_names is not None and known_variables is not None:
        errors += unknown_variable_errors(variable_names, known_variables)
    timeout = params.get("virtiofs_host_restart_timeout", 300)
    if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout < 0:
        errors.append(f"virtiofs_host_restart_timeout {timeout} must be 0 or more seconds (the time a domain gets to"
                      " shut down gracefully), e.g. 300")
    return errors


def host_plan(params: t.Mapping[str, t.Any], role_share_keys: t.Collection[str] = (),
              type_options: TypeOptions = module_typed_options, variable_names: t.Optional[t.Iterable[t.Any]] = None,
              known_variables: t.Optional[t.Iterable[t.Any]] = None,
              role_spec: t.Optional[t.Mapping[str, t.Mapping[str, t.Any]]] = None) -> t.Dict[str, t.Any]:
    """The plan of the host role from its variables (``virtiofs_host_*`` as keys; ``role_share_keys``
    are the keys of a share entry the role consumes itself; ``type_options``: see :func:`plan_wrappers`;
    ``variable_names`` and ``known_variables``: see :func:`variable_errors`; ``role_spec``: the options of the
    role's argument spec, to type the variables with, see :func:`typed_variables`). Fields:

    failure: the message the role fails with, or None; errors: variables, wrappers, shares and install (lists);
    wrappers (all profiles), wrappers_present, wrappers_absent, wrapper_paths (the paths of the
    present ones), wrapper_dirs; shares, domains, share_domains (the share module's domains option);
    virtiofsd: state, method, install, install_package, remove, daemon (install_dir/binary_name),
    install_dir_prefix; install_packages (whether the package step runs); extra_packages and
    apparmor_profiles (those variables, typed as lists); remove (whether the removal
    step runs); apparmor and selinux (the modes, decided with the facts by :func:`confinement`).
    """
    params, type_errors = typed_variables(params, role_spec)
    if role_spec is not None and known_variables is None:
        known_variables = list(role_spec)
    state = params.get("virtiofs_host_virtiofsd_state", "present")
    method = params.get("virtiofs_host_virtiofsd_method", "package")
    # null means the default here too
    install_dir = str(params.get("virtiofs_host_virtiofsd_install_dir") or "/opt/virtiofsd-rust")
    binary_name = str(params.get("virtiofs_host_virtiofsd_binary_name") or "virtiofsd")
    params = dict(params, virtiofs_host_virtiofsd_install_dir=install_dir, virtiofs_host_virtiofsd_binary_name=binary_name)
    wrapper_errors, wrappers = plan_wrappers(
        params.get("virtiofs_host_wrappers", {}), install_dir, binary_name, state, type_options)
    share_errors, shares = plan_shares(
        params.get("virtiofs_host_shares", []), wrappers, params.get("virtiofs_host_default_wrapper", "default"),
        role_share_keys, params.get("virtiofs_host_source_owner", "root"), params.get("virtiofs_host_source_group", "root"),
        params.get("virtiofs_host_source_mode", "0755"), type_options, daemon=f"{install_dir}/{binary_name}",
        daemon_removed=state == "absent", install_dir=install_dir)
    errors = {"variables": type_errors + variable_errors(params, variable_names, known_variables),
              "wrappers": wrapper_errors, "shares": share_errors, "install": install_errors(params)}
    present = [w for w in wrappers if w["state"] == "present"]
    absent = [w for w in wrappers if w["state"] == "absent"]
    paths = [w["path"] for w in present]
    install_package = state == "present" and method == "package"
    return {
        "failure": failure(errors),
        "errors": errors,
        "wrappers": wrappers,
        "wrappers_present": present,
        "wrappers_absent": absent,
        "wrapper_paths": paths,
        "wrapper_dirs": _unique(posixpath.dirname(p) for p in paths),
        "shares": shares,
        "domains": _unique(s["domain"] for s in shares),
        "share_domains": share_domains(shares),
        "virtiofsd": {
            "state": state,
            "method": method,
            "install": state == "present",
            "install_package": install_package,
            "remove": state == "absent",
            "daemon": f"{install_dir}/{binary_name}",
            "install_dir_prefix": install_dir.rstrip("/") + "/",
        },
        "install_packages": bool(to_bool(params.get("virtiofs_host_install_packages", True))
                                 or params.get("virtiofs_host_extra_packages") or install_package),
        "remove": state == "absent" or bool(absent),
        "extra_packages": list(params.get("virtiofs_host_extra_packages") or []),
        "apparmor_profiles": list(params.get("virtiofs_host_apparmor_profiles") or []),
        "apparmor": params.get("virtiofs_host_apparmor", "auto"),
        "selinux": params.get("virtiofs_host_selinux", "auto"),
    }


def confinement(plan: t.Mapping[str, t.Any], facts: t.Mapping[str, t.Any]) -> t.Dict[str, bool]:
    """Which confinement applies on the host, from the plan and the gathered facts (apparmor,
    selinux): apparmor (write the AppArmor rules), apparmor_kernel (AppArmor is enabled in the
    kernel, so the profiles are reloaded), selinux (SELinux is enabled and wanted), selinux_label
    (label the daemon and the wrappers: selinux, and the daemon is installed)."""
    def status(name: str) -> str:
        value = facts.get(name)
        return str(value.get("status", "disabled")) if isinstance(value, Mapping) else "disabled"

    kernel = status("apparmor") == "enabled"
    selinux = plan["selinux"] == "auto" and status("selinux") == "enabled"
    return {
        "apparmor": plan["apparmor"] == "always" or (plan["apparmor"] == "auto" and kernel),
        "apparmor_kernel": kernel,
        "selinux": selinux,
        "selinux_label": selinux and plan["virtiofsd"]["install"],
    }


def selinux_rules(plan: t.Mapping[str, t.Any], daemon_path: t.Optional[str], daemon_type: t.Any,
                  reference_context: t.Any, wrapper_type: str, daemon_realpath: t.Optional[str] = None,
                  wrapper_realpaths: t.Optional[t.Mapping[str, str]] = None) -> t.List[t.Dict[str, str]]:
    """The SELinux file context rules of the host role: the daemon it installed (a path under the
    plan's install directory) gets ``daemon_type``, or else the type of ``reference_context`` (the
    ``user:role:type:level`` label of the distribution's virtiofsd), or else ``bin_t``; every
    present wrapper gets ``wrapper_type``.

    A rule names the resolved path (file context rules match the real path; a rule for a path
    through a symbolic link labels nothing): ``daemon_realpath`` (the virtiofsd module's
    ``realpath``) for the daemon, ``wrapper_realpaths`` (wrapper path -> the virtiofsd_wrapper
    module's ``realpath``) for the wrappers; a path they do not resolve stays as it is.
    """
    if not daemon_type:
        fields = str(reference_context or "").strip().split(":")
        daemon_type = fields[2] if len(fields) >= 3 else "bin_t"
    resolved = dict(wrapper_realpaths or {})
    rules = []
    if daemon_path and str(daemon_path).startswith(plan["virtiofsd"]["install_dir_prefix"]):
        rules.append({"path": str(daemon_realpath or daemon_path), "type": str(daemon_type)})
    rules.extend({"path": str(resolved.get(path) or path), "type": wrapper_type} for path in plan["wrapper_paths"])
    return rules
