# SPDX-License-Identifier: GPL-3.0-or-later
"""The virtiofsd option/version table: gating, rendering, extra_args mapping, conflicts."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.virtiofs.libvirt.plugins.module_utils import _virtiofsd_options as vo
from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd import parse_help_options
from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd_options import (
    OPTIONS,
    OptionsError,
    merge_values,
    parse_extra_args,
    render_values,
    validate_values,
)

V100, V160, V1100, V1111, V1132 = (1, 0, 0), (1, 6, 0), (1, 10, 0), (1, 11, 1), (1, 13, 2)
FIXTURES = Path(__file__).parent / "fixtures"
MODULE = Path(__file__).parents[4] / "plugins" / "modules" / "virtiofsd_wrapper.py"

REQUIRED_KEYS = {
    "allow_direct_io", "announce_submounts", "cache", "inode_file_handles", "killpriv_v2", "log_level", "modcaps",
    "readdirplus", "posix_acl", "preserve_noatime", "rlimit_nofile", "sandbox", "seccomp", "security_label",
    "thread_pool_size", "uid_map", "gid_map", "translate_uid", "translate_gid", "writeback", "xattr", "xattrmap",
    "readonly", "allow_mmap", "syslog", "migration_mode", "migration_on_error", "migration_verify_handles",
    "migration_confirm_paths",
}


def problems_of(values, version, **kw):
    with pytest.raises(OptionsError) as err:
        validate_values(values, version, **kw)
    return err.value.problems


def test_table_has_every_key():
    assert set(OPTIONS) == REQUIRED_KEYS


def test_table_first_versions():
    added = {key: spec.added for key, spec in OPTIONS.items()}
    assert added["readonly"] == (1, 13, 0)
    assert added["translate_uid"] == added["translate_gid"] == (1, 13, 0)
    assert added["allow_mmap"] == (1, 11, 0)
    assert added["uid_map"] == added["gid_map"] == (1, 6, 0)
    assert added["preserve_noatime"] == (1, 7, 0)
    assert added["security_label"] == (1, 4, 0)
    assert added["modcaps"] == added["posix_acl"] == (1, 2, 0)
    assert added["syslog"] == added["killpriv_v2"] == (1, 1, 0)
    assert added["migration_mode"] == (1, 11, 0)
    assert OPTIONS["cache"].choice_added("metadata") == (1, 8, 0)
    assert OPTIONS["inode_file_handles"].choice_added("mandatory") == (1, 1, 0)
    assert OPTIONS["inode_file_handles"].choice_added("prefer") == (1, 2, 0)
    assert OPTIONS["seccomp"].choice_added("log") == (1, 1, 0)
    assert OPTIONS["log_level"].choice_added("off") == (1, 1, 0)
    assert OPTIONS["migration_mode"].choice_added("file-handles") == (1, 12, 0)
    assert OPTIONS["uid_map"].repeatable_since == (1, 11, 0)


def test_table_flags_match_real_rust_help():
    """Every flag of the table is an option the real 1.13.2 binary lists (and vice versa, minus libvirt's)."""
    path = FIXTURES / "virtiofsd-rust-1.13.2-help.txt"
    if not path.exists():
        pytest.skip("Rust 1.13.2 --help fixture not captured yet")
    helped = parse_help_options(path.read_text())
    table_flags = set(vo.FLAG_TO_KEY)
    assert table_flags <= helped
    owned = {f for f in vo.LIBVIRT_OWNED if f.startswith("--")}
    assert helped - table_flags == owned


# --- rendering ---------------------------------------------------------------------------------

def test_render_forms():
    values = {
        "inode_file_handles": "prefer",
        "readdirplus": False,
        "killpriv_v2": True,
        "cache": "metadata",
        "uid_map": [":0:100000:65536:", ":65536:0:1:"],
        "thread_pool_size": 0,
        "xattr": False,
        "announce_submounts": False,
        "xattrmap": ":map::user.virtiofs.:",
    }
    assert render_values(values) == [
        "--no-announce-submounts",
        "--cache=metadata",
        "--inode-file-handles=prefer",
        "--killpriv-v2",
        "--no-readdirplus",
        "--thread-pool-size=0",
        "--uid-map=:0:100000:65536:",
        "--uid-map=:65536:0:1:",
        "--xattrmap=:map::user.virtiofs.:",
    ]


@pytest.mark.parametrize(
    "key, value, argv",
    [
        ("killpriv_v2", False, ["--no-killpriv-v2"]),
        ("readdirplus", True, []),
        ("announce_submounts", True, ["--announce-submounts"]),
        ("readonly", False, []),
        ("readonly", True, ["--readonly"]),
        ("translate_uid", [], []),
        ("cache", None, []),
        ("log_level", "off", ["--log-level=off"]),
        ("rlimit_nofile", 4096, ["--rlimit-nofile=4096"]),
    ],
)
def test_render_single(key, value, argv):
    assert render_values({key: value}) == argv


def test_render_is_deterministic_regardless_of_input_order():
    a = {"writeback": True, "cache": "always", "sandbox": "chroot"}
    b = dict(reversed(list(a.items())))
    assert render_values(a) == render_values(b) == ["--cache=always", "--sandbox=chroot", "--writeback"]


# --- version gating ----------------------------------------------------------------------------

ALL_1132 = {
    "allow_direct_io": True, "allow_mmap": True, "announce_submounts": False, "cache": "metadata",
    "inode_file_handles": "prefer", "killpriv_v2": True, "log_level": "off", "migration_confirm_paths": True,
    "migration_mode": "find-paths", "migration_on_error": "guest-error", "migration_verify_handles": True,
    "modcaps": "+sys_admin:-chown", "posix_acl": False, "preserve_noatime": True, "readdirplus": False,
    "readonly": True, "rlimit_nofile": 1000, "sandbox": "namespace", "seccomp": "log", "security_label": True,
    "syslog": True, "thread_pool_size": 4, "translate_uid": ["map:0:1000:1"], "translate_gid": ["guest:0:1000:1"],
    "uid_map": [":0:0:1:", ":1:100000:65535:"], "gid_map": [":0:0:1:"], "writeback": True, "xattr": True,
    "xattrmap": ":map::user.virtiofs.:",
}


def test_everything_valid_on_1132():
    warnings = validate_values(ALL_1132, V1132)
    # only the libvirt-XML warnings (cache, sandbox, xattr)
    assert sorted(w.split(":")[0] for w in warnings if "domain XML" in w) == [
        "options.cache", "options.sandbox", "options.xattr"]


@pytest.mark.parametrize(
    "version, bad",
    [
        (V1111, {"readonly", "translate_uid", "translate_gid", "migration_mode"}),  # migration_mode=file-handles
        (V1100, {"readonly", "translate_uid", "translate_gid", "allow_mmap", "migration_confirm_paths",
                 "migration_mode", "migration_on_error", "migration_verify_handles",
                 "uid_map"}),  # two uid_map entries: repeatable only since 1.11.0
        (V160, {"readonly", "translate_uid", "translate_gid", "allow_mmap", "migration_confirm_paths",
                "migration_mode", "migration_on_error", "migration_verify_handles", "preserve_noatime", "cache",
                "uid_map"}),
        (V100, {"readonly", "translate_uid", "translate_gid", "allow_mmap", "migration_confirm_paths",
                "migration_mode", "migration_on_error", "migration_verify_handles", "preserve_noatime", "cache",
                "uid_map", "gid_map", "announce_submounts", "killpriv_v2", "log_level", "modcaps",
                "seccomp", "security_label", "syslog", "inode_file_handles"}),
    ],
)
def test_gating_by_version(version, bad):
    values = dict(ALL_1132)
    if version == V1111:
        values["migration_mode"] = "file-handles"  # 1.12.0
        values["migration_verify_handles"] = False
        values["migration_confirm_paths"] = False
    problems = problems_of(values, version)
    named = {re.match(r"options\.(\w+)", p).group(1) for p in problems}
    assert named == bad
    for p in problems:
        assert vo.vstr(version) in p  # the installed version is named


def test_gating_messages_name_both_versions():
    p = problems_of({"readonly": True}, V1100)
    assert p == [
        "options.readonly: readonly=true renders --readonly, which was added in virtiofsd 1.13.0, "
        "the installed virtiofsd is 1.10.0; upgrade virtiofsd or remove readonly"
    ]
    p = problems_of({"thread_pool_size": 1, "modcaps": "+sys_admin"}, V100)
    assert p == [
        "options.modcaps: --modcaps was added in virtiofsd 1.2.0, the installed virtiofsd is 1.0.0; "
        "upgrade virtiofsd or remove modcaps"
    ]
    p = problems_of({"cache": "metadata"}, (1, 7, 2))
    assert "cache=metadata (--cache=metadata) was added in virtiofsd 1.8.0, the installed virtiofsd is 1.7.2" in p[0]
    assert p[0].endswith("; upgrade virtiofsd or choose another value")
    p = problems_of({"inode_file_handles": "prefer"}, (1, 1, 0))
    assert "was added in virtiofsd 1.2.0, the installed virtiofsd is 1.1.0" in p[0]
    p = problems_of({"seccomp": "log"}, V100)
    assert "was added in virtiofsd 1.1.0, the installed virtiofsd is 1.0.0" in p[0]
    p = problems_of({"announce_submounts": False}, (1, 5, 0))
    assert "--no-announce-submounts" in p[0] and "1.6.0" in p[0] and "1.5.0" in p[0]
    p = problems_of({"killpriv_v2": True}, (1, 2, 0))
    assert "--killpriv-v2" in p[0] and "1.3.0" in p[0] and "on by default" in p[0]


def test_false_that_renders_nothing_is_valid_everywhere():
    # posix_acl/readonly/allow_mmap false are the daemon's default: no flag, no version needed
    assert validate_values({"posix_acl": False, "readonly": False, "allow_mmap": False}, V100) == []
    assert render_values({"posix_acl": False, "readonly": False, "allow_mmap": False}) == []


def test_value_boundaries():
    assert validate_values({"inode_file_handles": "mandatory"}, (1, 1, 0)) == []
    assert validate_values({"killpriv_v2": False}, (1, 1, 0)) == []
    assert validate_values({"announce_submounts": True}, V100) == []
    assert validate_values({"uid_map": [":0:0:1:"]}, V160) == []
    assert validate_values({"migration_mode": "file-handles"}, (1, 12, 0)) == []


def test_uid_map_repeat_needs_1110():
    p = problems_of({"uid_map": [":0:0:1:", ":1:1:1:"]}, V1100)
    assert "may only be given once before virtiofsd 1.11.0" in p[0] and "1.10.0" in p[0]
    assert p[0].endswith("; use one entry or upgrade virtiofsd")
    assert validate_values({"uid_map": [":0:0:1:", ":1:1:1:"]}, V1111) == []
    assert validate_values({"translate_uid": ["map:0:1:1", "forbid-guest:5:2"]}, V1132) == []


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"uid_map": ["0:0:1"]}, "not a valid uid_map entry; expected"),
        ({"gid_map": [":0:0:1"]}, "not a valid gid_map entry"),
        ({"translate_uid": ["squash:0:1:1"]}, "not a valid translate_uid entry"),
        ({"translate_gid": ["forbid-guest:1:2:3"]}, "not a valid translate_gid entry"),
        ({"modcaps": "sys_admin"}, "not a valid modcaps"),
        ({"modcaps": "+bogus_cap"}, "not a valid modcaps"),
        ({"modcaps": "+\u212aill"}, "not a valid modcaps"),  # Kelvin sign: not "kill" for libcap-ng
        ({"modcaps": "+cap_sys_admin"}, "not a valid modcaps"),
        ({"modcaps": "+sys_admin:-chwon"}, "not a valid modcaps"),
        ({"xattrmap": "a\nb"}, "not a valid xattrmap"),
        ({"thread_pool_size": -1}, "must be >= 0"),
        ({"rlimit_nofile": "many"}, "must be an integer"),
        ({"cache": "none"}, "'none' is not a valid cache; choose one of"),
        ({"sandbox": "off"}, "not a valid sandbox"),
        ({"nope": True}, "options.nope: unknown option"),
        ({"xattr": "yes"}, "options.xattr: xattr must be true or false, got 'yes'"),
        ({"thread_pool_size": 2 ** 64}, "options.thread_pool_size: thread_pool_size is too large, got 18446744073709551616"),
    ],
)
def test_bad_values(values, needle):
    p = problems_of(values, V1132)
    assert needle in p[0]


def test_help_set_check():
    helped = {"--cache", "--xattr"}
    assert validate_values({"xattr": True, "readdirplus": True}, V1132, supported_options=helped) is not None
    p = problems_of({"writeback": True}, V1132, supported_options=helped)
    assert "the daemon's --help does not list --writeback" in p[0] and "1.13.2" in p[0]


# --- conflicts ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "values, needle",
    [
        ({"posix_acl": True, "translate_uid": ["map:0:1:1"]}, "--posix-acl with --translate-uid"),
        ({"posix_acl": True, "translate_gid": ["map:0:1:1"]}, "--posix-acl with --translate-gid"),
        ({"uid_map": [":0:0:1:"], "sandbox": "chroot"}, "needs the user namespace"),
        ({"gid_map": [":0:0:1:"], "sandbox": "none"}, "needs the user namespace"),
        ({"migration_mode": "file-handles", "migration_verify_handles": True}, "--migration-verify-handles"),
        ({"migration_mode": "file-handles", "migration_confirm_paths": True}, "--migration-confirm-paths"),
        ({"inode_file_handles": "mandatory", "modcaps": "+sys_admin:-DAC_READ_SEARCH"}, "CAP_DAC_READ_SEARCH"),
    ],
)
def test_conflicts(values, needle):
    p = problems_of(values, V1132)
    assert len(p) == 1 and needle in p[0] and "conflicts with" in p[0]
    assert p[0].endswith("; remove one of them")


def test_no_conflict_when_off():
    assert validate_values({"posix_acl": False, "translate_uid": ["map:0:1:1"]}, V1132) == []
    assert validate_values({"uid_map": [":0:0:1:"], "sandbox": "namespace"}, V1132)  # only the XML warning


def test_warnings():
    w = validate_values({"inode_file_handles": "fallback"}, V1132)
    assert any("deprecated alias of prefer" in x for x in w)
    w = validate_values({"readdirplus": True, "cache": "never"}, V1132)
    assert any("no effect with cache=never" in x for x in w)
    w = validate_values({"xattr": True}, V1132)
    assert len(w) == 1 and "<binary xattr='on|off'>" in w[0] and "virtiofs.libvirt.share" in w[0]


# --- extra_args --------------------------------------------------------------------------------

def test_extra_args_forms():
    values, origins = parse_extra_args(
        ["--cache", "never", "--log-level=debug", "--no-readdirplus", "--uid-map=:0:0:1:", "--uid-map", ":1:1:1:",
         "--no-killpriv-v2", "--no-announce-submounts", "--thread-pool-size=2"]
    )
    assert values == {
        "cache": "never", "log_level": "debug", "readdirplus": False, "uid_map": [":0:0:1:", ":1:1:1:"],
        "killpriv_v2": False, "announce_submounts": False, "thread_pool_size": 2,
    }
    assert origins["cache"] == "extra_args '--cache' 'never'"
    assert render_values(values) == [
        "--no-announce-submounts", "--cache=never", "--no-killpriv-v2", "--log-level=debug", "--no-readdirplus",
        "--thread-pool-size=2", "--uid-map=:0:0:1:", "--uid-map=:1:1:1:",
    ]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--fd=3"], "--fd is refused: libvirt passes the listening socket with --fd"),
        (["--socket-path=/x"], "--socket-path is refused: libvirt passes the socket with --fd"),
        (["--socket", "/x"], "--socket is refused"),
        (["--shared-dir", "/srv"], "--shared-dir is refused: libvirt passes the shared directory from <source dir=...>"),
        (["--tag=x"], "--tag is refused: libvirt/QEMU set the tag from <target dir=...>; --tag crashes QEMU 7.1-8.0"),
        (["--socket-group=kvm"], "--socket-group is refused"),
        (["-o", "cache=none"], "-o is refused: -o is libvirt's compat option list; it overrides every separate option"),
        (["-osource=/srv"], "-o is refused"),
        (["--print-capabilities"], "--print-capabilities is refused: libvirt probes --print-capabilities itself"),
        (["--help"], "--help is refused: not a daemon option"),
        (["--version"], "--version is refused"),
        (["-V"], "-V is refused"),
        (["-d"], "-d is refused: deprecated alias; use log_level: debug"),
        (["-f"], "-f is refused: deprecated no-op flag of the C daemon; remove it"),
        (["--uid=1000"], "virtiofsd has no --uid option; use uid_map (user namespace) or translate_uid (in-daemon)"),
        (["--daemonize"], "--daemonize is a C virtiofsd option; the Rust daemon always runs in the foreground under libvirt"),
        (["--cach=never"], "unknown virtiofsd option --cach (did you mean --cache?)"),
        (["--bogus"], "unknown virtiofsd option --bogus"),
        (["--inode-file-handles", "prefer"], "--inode-file-handles needs '=' (--inode-file-handles=VALUE); virtiofsd rejects a separate value (rc 2)"),
        (["--xattr=yes"], "--xattr takes no value; write it as --xattr"),
        (["--cache"], "needs a value"),
        (["never"], "extra_args 'never': not an option (values go into the same item as --flag=value)"),
        ([""], "extra_args contains an empty string; remove it"),
        (["--thread-pool-size=x"], "must be an integer"),
        (["--cache=never", "--cache=always"], "cache is already set by extra_args '--cache=never'; give each option once"),
        (["--killpriv-v2", "--no-killpriv-v2"], "killpriv_v2 is already set"),
    ],
)
def test_extra_args_refused(args, needle):
    with pytest.raises(OptionsError) as err:
        parse_extra_args(args)
    assert any(needle in p for p in err.value.problems), err.value.problems


def test_extra_args_are_validated_like_options():
    extra, origins = parse_extra_args(["--readonly", "--cache=metadata"])
    values, origins = merge_values({}, extra, origins)
    p = problems_of(values, (1, 7, 0), origins=origins)
    assert any(x.startswith("extra_args '--readonly': readonly=true renders --readonly, which was added in virtiofsd 1.13.0") for x in p)
    assert any(x.startswith("extra_args '--cache=metadata': cache=metadata") for x in p)


def test_merge_refuses_the_same_key_twice():
    extra, origins = parse_extra_args(["--cache=never"])
    with pytest.raises(OptionsError, match="options.cache already sets; keep one"):
        merge_values({"cache": "always"}, extra, origins)
    values = merge_values({"cache": None, "xattr": True}, extra, origins)[0]
    assert values == {"cache": "never", "xattr": True}


def test_merge_refuses_an_unknown_option_and_names_the_known_ones():
    with pytest.raises(OptionsError) as err:
        merge_values({"cahce": "never"}, {}, {})
    assert err.value.problems[0].startswith("options.cahce: unknown option; known: allow_direct_io, allow_mmap, ")
    assert err.value.problems[0].endswith(", xattr, xattrmap; did you mean cache?")
    with pytest.raises(OptionsError) as err:
        merge_values({"zzz": 1}, {}, {})
    assert err.value.problems[0].endswith(", xattr, xattrmap")


def test_check_without_daemon_reports_every_version_independent_problem():
    assert vo.check_without_daemon({"cache": "never", "translate_uid": ["map:0:1000:1"]}, ["--no-readdirplus"]) == []
    assert vo.check_without_daemon(None) == []
    problems = vo.check_without_daemon(
        {"cahce": "never", "cache": "sometimes", "thread_pool_size": -2, "xattr": "x", "posix_acl": True,
         "translate_gid": ["map:0:1000:1"]},
        ["--bogus", "--modcaps=+chown"])
    assert problems[0] == "extra_args '--bogus': unknown virtiofsd option --bogus"
    assert problems[1].startswith("options.cahce: unknown option; known: ") and problems[1].endswith("; did you mean cache?")
    assert problems[2:] == [
        "options.xattr must be true or false, got 'x'",
        "options.cache: 'sometimes' is not a valid cache; choose one of auto, always, never, metadata",
        "options.thread_pool_size: thread_pool_size must be >= 0, got -2",
        "options.posix_acl conflicts with options.translate_gid=map:0:1000:1: virtiofsd refuses --posix-acl with --translate-gid"
        " (translating IDs would break POSIX ACLs); remove one of them",
    ]


def test_check_without_daemon_leaves_the_versions_to_validate_values():
    # translate_uid needs virtiofsd 1.13.0: fine without a daemon, refused for 1.10.0
    assert vo.check_without_daemon({"translate_uid": ["map:0:1000:1"]}) == []
    with pytest.raises(OptionsError, match="was added in virtiofsd 1.13.0"):
        vo.validate_values({"translate_uid": ["map:0:1000:1"]}, (1, 10, 0))


# --- the module's argument spec and documentation agree with the table -------------------------

def _doc_suboptions():
    text = MODULE.read_text()
    doc = re.search(r'DOCUMENTATION = r"""(.*?)"""', text, re.S).group(1)
    return yaml.safe_load(doc)["options"]["options"]["suboptions"]


def test_argument_spec_matches_documentation():
    spec = vo.argument_spec()
    docs = _doc_suboptions()
    assert set(spec) == set(docs) == REQUIRED_KEYS
    for key, entry in spec.items():
        doc = docs[key]
        assert doc["type"] == entry["type"], key
        assert sorted(doc.get("choices", [])) == sorted(entry.get("choices", [])), key
        assert doc.get("elements") == entry.get("elements"), key
        text = " ".join(doc["description"])
        assert f"virtiofsd {vo.vstr(OPTIONS[key].added)}" in text, key
        for flag in OPTIONS[key].flags():
            assert flag in text, (key, flag)
        for value, added in OPTIONS[key].choices:
            if added != OPTIONS[key].added:
                assert vo.vstr(added) in text, (key, value)


@pytest.mark.parametrize("values, expected", [
    ({"modcaps": "sys_admin"},
     "options.modcaps: 'sys_admin' is not a valid modcaps; expected a ':'-separated list of +capability / -capability"),
    ({"xattrmap": "a\nb"},
     "options.xattrmap: 'a\\nb' is not a valid xattrmap; expected a non-empty rule string without NUL or newline"),
])
def test_bad_strings_name_the_expected_form(values, expected):
    p = problems_of(values, V1132)
    assert len(p) == 1 and p[0].startswith(expected), p
