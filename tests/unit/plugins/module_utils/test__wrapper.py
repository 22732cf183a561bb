# SPDX-License-Identifier: GPL-3.0-or-later
"""The wrapper script: rendering, shell semantics (run for real with /bin/sh), validation, refusals.

Shell tests run the rendered script with /bin/sh against a small "binary" that prints its own
argv and pid as JSON, so quoting, "$@" handling and exec are tested for real. Tests that need
the Rust virtiofsd use the lab's binary (lab.json) or $VIRTIOFSD_RUST and skip without it.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from ansible_collections.virtiofs.libvirt.plugins.module_utils._virtiofsd import (
    DaemonInfo,
    parse_help_options,
    probe_daemon,
)
from ansible_collections.virtiofs.libvirt.plugins.module_utils._wrapper import (
    MARKER,
    WrapperError,
    check_argv_with_daemon,
    check_daemon,
    check_paths,
    is_managed_wrapper,
    plan_wrapper,
    render_script,
    self_test,
)

FIXTURES = Path(__file__).parent / "fixtures"
C_DAEMON = "/usr/lib/qemu/virtiofsd"
PYTHON = "/usr/bin/python3"


def real_run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def rust_binary():
    candidates = [os.environ.get("VIRTIOFSD_RUST"), "/opt/it-wrapper/virtiofsd"]
    lab = Path("/var/lib/virtiofs-libvirt-lab/lab.json")
    if lab.exists():
        candidates.append(json.loads(lab.read_text()).get("virtiofsd_binary"))
    for cand in candidates:
        if cand and os.access(cand, os.X_OK) and real_run([cand, "--version"])[1].startswith("virtiofsd 1."):
            return cand
    return None


needs_rust = pytest.mark.skipif(rust_binary() is None, reason="no Rust virtiofsd (lab.json or $VIRTIOFSD_RUST)")


def make_exec(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def argv_printer(tmp_path):
    """A fake daemon that prints {"argv": [...], "pid": N} and nothing else."""
    return make_exec(
        tmp_path / "fake daemon $x",  # a path that itself needs quoting
        f"#!{PYTHON}\nimport json, os, sys\nprint(json.dumps({{'argv': sys.argv[1:], 'pid': os.getpid()}}))\n",
    )


def run_wrapper(tmp_path, binary, options, args):
    script = tmp_path / "wrapper.sh"
    script.write_text(render_script(binary, options))
    script.chmod(0o755)
    proc = subprocess.Popen(["/bin/sh", str(script)] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out, err = proc.communicate(timeout=30)
    return proc, out, err


def info(version, options=None, impl="rust", path="/usr/bin/true"):
    return DaemonInfo(path=path, implementation=impl, version=version, version_raw=f"virtiofsd {version}",
                      supported_options=set(options or ()))


# --- shell semantics, for real -----------------------------------------------------------------

NASTY = [
    "--xattrmap=:map:user. with space:trusted.$HOME;`id`:",
    "--modcaps=+sys_admin",
    "--log-level=it's \"quoted\"",
    "--uid-map=;rm -rf /tmp/nothing;",
    "--x=$(echo injected)",
    "--y=a\\b\\\\c",
    "--z=*",
    "--nl=line1\nline2",
    "--empty=",
]


def test_options_after_libvirt_args_and_quoted(tmp_path, argv_printer):
    libvirt_args = ["--fd=35", "-o", "source=/srv/share with space,cache=none"]
    proc, out, err = run_wrapper(tmp_path, argv_printer, NASTY, libvirt_args)
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert data["argv"] == libvirt_args + NASTY
    assert data["pid"] == proc.pid  # exec: the daemon *is* the process libvirt started
    assert err == ""


def test_separate_options_style_passthrough(tmp_path, argv_printer):
    args = ["--fd=43", "--shared-dir", "/mnt/cache dir", "--cache", "always", "--sandbox", "chroot", "--xattr"]
    proc, out, _err = run_wrapper(tmp_path, argv_printer, ["--cache=never"], args)
    assert json.loads(out)["argv"] == args + ["--cache=never"]


def test_bare_probe_gets_no_options(tmp_path, argv_printer):
    proc, out, _err = run_wrapper(tmp_path, argv_printer, ["--cache=never", "--readonly"], ["--print-capabilities"])
    data = json.loads(out)
    assert data["argv"] == ["--print-capabilities"]
    assert data["pid"] == proc.pid
    # not exactly the bare probe: options are appended
    out = run_wrapper(tmp_path, argv_printer, ["--readonly"], ["--print-capabilities", "--fd=3"])[1]
    assert json.loads(out)["argv"] == ["--print-capabilities", "--fd=3", "--readonly"]
    out = run_wrapper(tmp_path, argv_printer, ["--readonly"], ["--print-capabilitiesX"])[1]
    assert json.loads(out)["argv"] == ["--print-capabilitiesX", "--readonly"]


def test_no_arguments_and_empty_argument(tmp_path, argv_printer):
    out = run_wrapper(tmp_path, argv_printer, ["--readonly"], [])[1]
    assert json.loads(out)["argv"] == ["--readonly"]
    out = run_wrapper(tmp_path, argv_printer, [], ["", "a b"])[1]
    assert json.loads(out)["argv"] == ["", "a b"]


def test_wrapper_prints_nothing_itself(tmp_path):
    silent = make_exec(tmp_path / "silent", "#!/bin/sh\nexit 0\n")
    for args in ([], ["--print-capabilities"], ["--fd=3", "-o", "source=/x"]):
        proc, out, err = run_wrapper(tmp_path, silent, NASTY, args)
        assert (proc.returncode, out, err) == (0, "", "")


def test_exit_code_is_the_daemons(tmp_path):
    failing = make_exec(tmp_path / "fail", "#!/bin/sh\necho 'error: x' >&2\nexit 2\n")
    proc, out, err = run_wrapper(tmp_path, failing, [], ["--bogus"])
    assert (proc.returncode, out, err) == (2, "", "error: x\n")


def test_header_lists_options_and_cannot_inject(tmp_path):
    script = render_script("/opt/v/virtiofsd", ["--cache=never", "--x=a\nexit 7", "--y=$(touch /tmp/pwn)"])
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert MARKER in lines[1] and "managed by Ansible" in lines[1]
    assert "#   --cache=never" in lines
    # every line is either a comment or part of the fixed program
    code = [line for line in lines if not line.startswith("#")]
    assert code[0] == 'if [ "$#" -eq 1 ] && [ "$1" = "--print-capabilities" ]; then'
    assert code[1] == "    exec /opt/v/virtiofsd --print-capabilities"
    assert code[2] == "fi"
    assert code[3].startswith('exec /opt/v/virtiofsd "$@" --cache=never ')
    # the quoted newline continues the exec line; nothing after it is a command of its own
    assert shlex.split("\n".join(code[3:])) == [
        "exec", "/opt/v/virtiofsd", "$@", "--cache=never", "--x=a\nexit 7", "--y=$(touch /tmp/pwn)"]
    assert is_managed_wrapper(script) and is_managed_wrapper(script.encode())
    assert not is_managed_wrapper("#!/bin/sh\nexec /usr/libexec/virtiofsd \"$@\"\n")


def test_render_is_stable():
    assert render_script("/a/b", ["--x"]) == render_script("/a/b", ["--x"])
    assert render_script("/a/b", []) != render_script("/a/b", ["--x"])
    assert "# options: none" in render_script("/a/b", [])


def test_sh_syntax_check(tmp_path):
    script = tmp_path / "w.sh"
    script.write_text(render_script("/opt/it's here/virtiofsd", NASTY))
    assert subprocess.run(["/bin/sh", "-n", str(script)], check=False).returncode == 0


# --- path refusals -----------------------------------------------------------------------------

def test_check_paths_ok(tmp_path, argv_printer):
    check_paths(str(tmp_path / "w.sh"), argv_printer)


def test_refuse_relative(tmp_path, argv_printer):
    with pytest.raises(WrapperError, match="path must be an absolute path"):
        check_paths("w.sh", argv_printer)
    with pytest.raises(WrapperError, match="binary must be an absolute path"):
        check_paths(str(tmp_path / "w.sh"), "virtiofsd")


def test_refuse_binary_equal_to_path(tmp_path, argv_printer):
    with pytest.raises(WrapperError, match="is the wrapper path itself"):
        check_paths(argv_printer, argv_printer)
    with pytest.raises(WrapperError, match="is the wrapper path itself"):
        check_paths(str(tmp_path / "x" / ".." / "w.sh"), str(tmp_path / "w.sh"))


def test_refuse_binary_resolving_to_path(tmp_path, argv_printer):
    wrapper = tmp_path / "w.sh"
    wrapper.write_text("#!/bin/sh\n")
    link = tmp_path / "virtiofsd"
    link.symlink_to(wrapper)
    with pytest.raises(WrapperError, match="resolves to the wrapper path"):
        check_paths(str(wrapper), str(link))
    # and the other way round: the wrapper path is a symlink to the binary
    link2 = tmp_path / "w2.sh"
    link2.symlink_to(argv_printer)
    with pytest.raises(WrapperError, match="resolves to the wrapper path"):
        check_paths(str(link2), argv_printer)


def test_refuse_missing_non_executable_dir(tmp_path, argv_printer):
    with pytest.raises(WrapperError, match="does not exist; install virtiofsd first"):
        check_paths(str(tmp_path / "w.sh"), str(tmp_path / "nope"))
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    with pytest.raises(WrapperError, match="is not executable"):
        check_paths(str(tmp_path / "w.sh"), str(plain))
    with pytest.raises(WrapperError, match="is not a regular file"):
        check_paths(str(tmp_path / "w.sh"), str(tmp_path))
    with pytest.raises(WrapperError, match="is a directory; give the file name"):
        check_paths(str(tmp_path), argv_printer)
    with pytest.raises(WrapperError, match="does not exist; create it first"):
        check_paths(str(tmp_path / "nodir" / "w.sh"), argv_printer)
    with pytest.raises(WrapperError, match="must not contain newline or NUL characters"):
        check_paths(str(tmp_path / "w\n.sh"), argv_printer)


def test_refuse_binary_that_is_a_managed_wrapper(tmp_path, argv_printer):
    other = make_exec(tmp_path / "other.sh", render_script(argv_printer, []))
    with pytest.raises(WrapperError, match="is itself a wrapper managed by"):
        check_paths(str(tmp_path / "w.sh"), other)


@pytest.mark.skipif(not os.access(C_DAEMON, os.X_OK), reason="Debian 12 C virtiofsd not installed")
def test_refuse_c_daemon_real(tmp_path):
    daemon = probe_daemon(C_DAEMON, real_run)
    with pytest.raises(WrapperError, match="legacy C virtiofsd .*virtiofsd version 7.2.22") as err:
        check_daemon(daemon)
    assert str(err.value).endswith(". Install the Rust virtiofsd and point binary at it")
    with pytest.raises(WrapperError, match="legacy C virtiofsd"):
        plan_wrapper(str(tmp_path / "w.sh"), C_DAEMON, daemon, {"cache": "never"})


def test_refuse_unknown_daemon():
    with pytest.raises(WrapperError, match="not a recognised Rust virtiofsd"):
        check_daemon(DaemonInfo(path="/x", implementation=None, version=None, version_raw="hello"))


# --- plan: validation against table and --help, several versions ------------------------------

def help_1132():
    return parse_help_options((FIXTURES / "virtiofsd-rust-1.13.2-help.txt").read_text())


@pytest.mark.parametrize(
    "version, options, ok",
    [
        ((1, 0, 0), {"cache": "always", "xattr": True, "thread_pool_size": 2}, True),
        ((1, 0, 0), {"inode_file_handles": "mandatory"}, False),
        ((1, 6, 0), {"announce_submounts": False, "uid_map": [":0:0:1:"]}, True),
        ((1, 6, 0), {"preserve_noatime": True}, False),
        ((1, 10, 0), {"cache": "metadata", "preserve_noatime": True}, True),
        ((1, 10, 0), {"allow_mmap": True}, False),
        ((1, 11, 1), {"allow_mmap": True, "uid_map": [":0:0:1:", ":1:1:1:"]}, True),
        ((1, 11, 1), {"readonly": True}, False),
        ((1, 13, 2), {"readonly": True, "translate_uid": ["map:0:1000:1"]}, True),
        ((1, 13, 2), {"posix_acl": True, "translate_uid": ["map:0:1000:1"]}, False),
    ],
)
def test_plan_versions(tmp_path, argv_printer, version, options, ok):
    daemon = info(version, help_1132() if version == (1, 13, 2) else None)
    if ok:
        plan = plan_wrapper(str(tmp_path / "w.sh"), argv_printer, daemon, options)
        assert plan.argv and plan.daemon_version == ".".join(map(str, version))
        assert plan.script == render_script(argv_printer, plan.argv)
    else:
        with pytest.raises(WrapperError) as err:
            plan_wrapper(str(tmp_path / "w.sh"), argv_printer, daemon, options)
        msg = str(err.value)
        assert ".".join(map(str, version)) in msg  # installed version named
        assert "options." in msg


def test_plan_error_names_option_and_versions(tmp_path, argv_printer):
    with pytest.raises(WrapperError) as err:
        plan_wrapper(str(tmp_path / "w.sh"), argv_printer, info((1, 10, 0)), {"readonly": True})
    msg = str(err.value)
    assert "options.readonly" in msg and "1.13.0" in msg and "1.10.0" in msg
    assert msg.startswith(f"invalid virtiofsd options for {argv_printer} (virtiofsd 1.10.0): ")


def test_plan_extra_args_and_help_check(tmp_path, argv_printer):
    plan = plan_wrapper(str(tmp_path / "w.sh"), argv_printer, info((1, 13, 2), help_1132()),
                        {"cache": "never"}, ["--no-readdirplus", "--inode-file-handles=prefer"])
    assert plan.argv == ["--cache=never", "--inode-file-handles=prefer", "--no-readdirplus"]
    assert any("domain XML" in w for w in plan.warnings)
    # a build whose --help lacks an option is refused even if the version table allows it
    with pytest.raises(WrapperError, match="--help does not list --readonly"):
        plan_wrapper(str(tmp_path / "w.sh"), argv_printer, info((1, 13, 2), help_1132() - {"--readonly"}),
                     {"readonly": True})


@pytest.mark.parametrize("arg", ["--fd=3", "--socket-path=/x", "--shared-dir=/srv", "--tag=t", "-o", "--socket=/s",
                                 "--socket-group=kvm", "--print-capabilities", "--help", "--version"])
def test_plan_refuses_libvirt_owned(tmp_path, argv_printer, arg):
    with pytest.raises(WrapperError, match="is refused"):
        plan_wrapper(str(tmp_path / "w.sh"), argv_printer, info((1, 13, 2)), {}, [arg])


# --- with the real Rust daemon -----------------------------------------------------------------

@needs_rust
def test_check_argv_with_real_daemon():
    binary = rust_binary()
    check_argv_with_daemon(binary, ["--cache=never", "--xattrmap=:map::user.virtiofs.:", "--uid-map=:0:0:1:"],
                           real_run)
    with pytest.raises(WrapperError, match=r"rejected the options \(rc 2\).*xattrmap"):
        check_argv_with_daemon(binary, ["--xattrmap=bogus"], real_run)


@needs_rust
def test_self_test_real_daemon(tmp_path):
    binary = rust_binary()
    daemon = probe_daemon(binary, real_run)
    options = {"cache": "metadata", "inode_file_handles": "prefer", "xattrmap": ":map::user.virtiofs.:",
               "log_level": "warn"}
    plan = plan_wrapper(str(tmp_path / "w.sh"), binary, daemon, options)
    wrapper = make_exec(tmp_path / "w.sh", plan.script)
    result = self_test(wrapper, daemon, real_run)
    assert result["version"] == daemon.version_string
    assert "separate-options" in result["capabilities"]["features"]


@needs_rust
def test_self_test_catches_stdout_noise(tmp_path):
    binary = rust_binary()
    daemon = probe_daemon(binary, real_run)
    noisy = make_exec(tmp_path / "noisy.sh", f"#!/bin/sh\n[ \"$1\" = --print-capabilities ] && echo starting\nexec {shlex.quote(binary)} \"$@\"\n")
    with pytest.raises(WrapperError, match="did not print JSON"):
        self_test(noisy, daemon, real_run)


@needs_rust
def test_self_test_catches_wrong_daemon(tmp_path):
    binary = rust_binary()
    daemon = probe_daemon(binary, real_run)
    other = make_exec(tmp_path / "c.sh", render_script(C_DAEMON, []))
    with pytest.raises(WrapperError, match="expected 'virtiofsd 1."):
        self_test(other, daemon, real_run)


@needs_rust
def test_self_test_catches_bad_options_on_full_exec_line(tmp_path):
    # the bare probe passes, the exec line with the options does not
    binary = rust_binary()
    daemon = probe_daemon(binary, real_run)
    bad = make_exec(tmp_path / "bad.sh", render_script(binary, ["--xattrmap=bogus"]))
    with pytest.raises(WrapperError, match="the full exec line with the options"):
        self_test(bad, daemon, real_run)


def test_is_managed_wrapper_needs_shebang():
    assert not is_managed_wrapper(f"# {MARKER}\n")
    assert not is_managed_wrapper(None)
    assert not is_managed_wrapper(b"\x7fELF....")


def test_render_uses_absolute_binary_and_exec():
    script = render_script("/opt/virtiofsd-rust/virtiofsd", ["--readonly"])
    assert 'exec /opt/virtiofsd-rust/virtiofsd "$@" --readonly\n' in script
    assert script.count("exec ") == 2
