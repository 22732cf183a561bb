# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's second hypervisor: a Debian tree of the other release with its own libvirtd.

On a Debian 12 machine the tree is Debian 13 (libvirt 11.x, QEMU 10.x, Debian's ``virtiofsd``
package, Python 3.13); on a Debian 13 machine it is Debian 12. Ansible reaches it as a separate
inventory host through an ``sshd`` that listens on a loopback port inside the tree; its guest
(a Debian 13 guest, so the guest role meets a second kernel and distribution) forwards SSH to
another loopback port.

The tree's daemons run in their own mount and PID namespace, entered by ``pivot_root``:
``unshare --mount --pid --fork --propagation private`` + ``pivot_root`` + ``tini`` as PID 1;
every later command enters that namespace with ``nsenter --target TINI --mount --pid --root --wd``.
**Never a plain ``chroot``**: libvirt's helpers enter QEMU's mount namespace with ``setns``,
which resets their root to the namespace's root; under a chroot that is the host's ``/`` (this
once rewrote the host's ``/dev/ptmx`` into a symlink). :func:`check_isolation` verifies the
namespace before any daemon starts and refuses otherwise, and :func:`check_host_ptmx` guards the
host's ``/dev/ptmx`` around every start.

The host reaches the tree's libvirt directly too (``qemu+unix:///system?socket=TREE/run/...``),
so tests can read definitions without SSH; paths inside the tree are ``TREE/<path>`` on the host.

Layout (all cached, keyed by a hash of the recipe, like the other lab artefacts):
``CACHE/hv2-<key>/root`` the tree (the tree's own state lives in it: its domains, its logs),
``CACHE/image-<key>`` the guest image of the tree's guest (bind-mounted read-only into the tree).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

NAME = "hypervisor2"
GUEST_NAME = "guest2"
DOMAIN = "vfs-lab2"
SSH_PORT = 2201          # the tree's sshd, 127.0.0.1 only
GUEST_SSH_PORT = 2224    # the tree's guest, forwarded by its QEMU (binds in the host's netns)
TREE_RECIPE_VERSION = "1"
# What the tree needs to be a hypervisor Ansible can manage. virtiofsd itself is only
# downloaded (apt's archive cache), not installed: installing it is the collection's job
# (method: package, the role's default).
TREE_PACKAGES = [
    "libvirt-daemon-system", "libvirt-daemon-driver-qemu", "libvirt-clients", "qemu-system-x86",
    "qemu-utils", "python3", "python3-libvirt", "python3-lxml", "python3-apt", "openssh-server",
    "tini", "procps", "iproute2", "kmod",
]
DOWNLOAD_ONLY = {"trixie": ["virtiofsd", "uidmap"], "bookworm": []}
IMAGE_MOUNT = "/var/lib/virtiofs-lab/image"     # inside the tree, read-only
DISKS = "/var/lib/virtiofs-lab/disks"           # inside the tree
ENV = ["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
       "HOME=/root", "LANG=C.UTF-8", "TERM=dumb"]


def other_release(host_release: int) -> tuple[str, int]:
    return ("trixie", 13) if host_release <= 12 else ("bookworm", 12)


# ---------------------------------------------------------------- safety checks

def check_host_ptmx(step: str, error) -> None:
    """The host's /dev/ptmx must stay the character device 5:2 (see the module docstring)."""
    st = os.lstat("/dev/ptmx")
    if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) != 5 or os.minor(st.st_rdev) != 2:
        raise error(step, "the HOST's /dev/ptmx is no longer the character device 5:2 "
                          "(something ran in the host's mount namespace instead of the tree's); "
                          "restore it with: rm -f /dev/ptmx && mknod -m 666 /dev/ptmx c 5 2")


def _safe_tree(tree: Path, cache: Path) -> Path:
    tree = tree.resolve()
    if tree == Path("/") or cache.resolve() not in tree.parents:
        raise ValueError(f"refusing to use {tree} as the second hypervisor's root (not under {cache})")
    return tree


def check_isolation(pid: int, tree: Path, step: str, error) -> None:
    """Refuse unless process ``pid`` has its own mount and PID namespace whose root is ``tree``
    (entered by pivot_root: the host's root is not mounted anywhere in it)."""
    why = []
    for ns in ("mnt", "pid"):
        if os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}"):
            why.append(f"it shares the host's {ns} namespace")
    root = os.stat(f"/proc/{pid}/root/")
    want = os.stat(tree)
    if (root.st_dev, root.st_ino) != (want.st_dev, want.st_ino):
        why.append(f"its root is not {tree}")
    host_root = os.stat("/")
    if (root.st_dev, root.st_ino) == (host_root.st_dev, host_root.st_ino):
        why.append("its root is the host's /")
    mounts = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    points = [line.split()[4] for line in mounts]
    if any(p == "/.oldroot" or p.startswith("/.oldroot/") for p in points):
        why.append("the host's old root is still mounted at /.oldroot")
    top = [line.split() for line in mounts if line.split()[4] == "/"]
    if not top or top[-1][3] == "/":
        why.append("its / is the root of the host's file system, not the tree (no pivot_root)")
    if why:
        raise error(step, f"refusing to start the second hypervisor's daemons: process {pid} is not "
                          f"isolated by pivot_root ({'; '.join(why)}). The tree's libvirtd must never run "
                          "under a plain chroot.")


# ---------------------------------------------------------------- mounts

def is_mount(path) -> bool:
    """Whether ``path`` is a mount point in this mount namespace (from /proc/self/mountinfo:
    os.path.ismount misses a directory bind-mounted onto itself)."""
    want = os.path.realpath(path)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point == want:
            return True
    return False


def _mount(run, step, *argv):
    run(step, ["mount", *argv])


def mount_tree(tree: Path, image_dir: str, run, step: str) -> None:
    """The host-side mounts: tree on itself, /sys (rslave), a private /dev, /run, the image."""
    if not is_mount(tree):
        _mount(run, step, "--bind", str(tree), str(tree))
        _mount(run, step, "--make-private", str(tree))
    sysdir = tree / "sys"
    if not is_mount(sysdir):
        _mount(run, step, "--rbind", "/sys", str(sysdir))
        _mount(run, step, "--make-rslave", str(sysdir))
    dev = tree / "dev"
    if not is_mount(dev):
        _mount(run, step, "-t", "tmpfs", "-o", "mode=0755,nosuid", "lab2-dev", str(dev))
        for name, major, minor in (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                                   ("urandom", 1, 9), ("tty", 5, 0)):
            os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(dev / name, 0o666)
        (dev / "pts").mkdir()
        _mount(run, step, "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620,gid=5", "lab2-devpts",
               str(dev / "pts"))
        os.symlink("pts/ptmx", dev / "ptmx")
        (dev / "shm").mkdir()
        _mount(run, step, "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "lab2-shm", str(dev / "shm"))
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(target, dev / name)
    run_dir = tree / "run"
    if not is_mount(run_dir):
        _mount(run, step, "-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "lab2-run", str(run_dir))
        for sub in ("lock", "sshd"):
            (run_dir / sub).mkdir(mode=0o755)
    if image_dir:
        img = tree / IMAGE_MOUNT.lstrip("/")
        img.mkdir(parents=True, exist_ok=True)
        if not is_mount(img):
            _mount(run, step, "--bind", image_dir, str(img))
            _mount(run, step, "-o", "remount,bind,ro", str(img))


def unmount_tree(tree: Path, run, step: str) -> None:
    """Unmount the tree and everything below it (several stacked binds too)."""
    for _attempt in range(10):
        if not is_mount(tree):
            return
        try:
            run(step, ["umount", "-R", str(tree)])
        except Exception:  # noqa: BLE001 (busy: detach lazily, the namespace is gone)
            run(step, ["umount", "-R", "-l", str(tree)])


# ---------------------------------------------------------------- the namespace

def _children(pid: int) -> list[int]:
    out = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def start_namespace(tree: Path, step: str, error, command: str = "exec tini -s -- sleep infinity") -> subprocess.Popen:
    """``unshare`` + ``pivot_root`` into ``tree``; returns the unshare process (its child is PID 1)."""
    # /proc first: the tree's umount (libmount) reads /proc/self/mountinfo
    script = ("set -e; cd \"$1\"; mkdir -p .oldroot; pivot_root . .oldroot; cd /; mount -t proc proc /proc; "
              "umount -l /.oldroot; rmdir /.oldroot 2>/dev/null || true; " + command)
    return subprocess.Popen(
        ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "--", "/bin/sh", "-c", script,
         "lab2", str(tree)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        text=True,
    )


def wait_init(proc: subprocess.Popen, step: str, error, timeout: float = 20) -> int:
    """The host PID of the namespace's PID 1 once it runs tini."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise error(step, f"the namespace exited {proc.returncode}: {proc.stdout.read()[-2000:]}")
        for child in _children(proc.pid):
            if _comm(child) == "tini":
                return child
        time.sleep(0.1)
    raise error(step, "tini did not start as PID 1 of the second hypervisor's namespace")


def ns_argv(init_pid: int, argv: list[str]) -> list[str]:
    return ["nsenter", "--target", str(init_pid), "--mount", "--pid", "--root", "--wd", "--", *ENV, *argv]


def ns_processes(init_pid: int) -> list[tuple[int, str]]:
    """(host pid, comm) of every process in the namespace of ``init_pid``."""
    want = os.readlink(f"/proc/{init_pid}/ns/pid")
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(d / "ns/pid") == want:
                    found.append((int(d.name), (d / "comm").read_text().strip()))
    return found


def ns_alive(init_pid: int | None, tree: Path) -> bool:
    if not init_pid:
        return False
    try:
        if _comm(init_pid) != "tini":
            return False
        root = os.stat(f"/proc/{init_pid}/root/")
        want = os.stat(tree)
        return (root.st_dev, root.st_ino) == (want.st_dev, want.st_ino)
    except OSError:
        return False


def stop_namespace(init_pid: int, log) -> None:
    """TERM the daemons (sshd, libvirtd: allow ~20 s, virtlogd), then tini (which ends the rest)."""
    for names, wait in ((("sshd",), 5), (("libvirtd", "virtqemud"), 25), (("virtlogd",), 5)):
        pids = [p for p, comm in ns_processes(init_pid) if comm in names]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.time() + wait
        while pids and time.time() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists()]
            time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(init_pid, signal.SIGKILL)   # PID 1 of the namespace: the kernel ends the rest
    deadline = time.time() + 10
    while Path(f"/proc/{init_pid}").exists() and time.time() < deadline:
        time.sleep(0.1)
    log(f"second hypervisor namespace (tini {init_pid}) stopped")


# ---------------------------------------------------------------- the tree

def build_tree(out: Path, release: str, mirror: str, run, step: str, error, log) -> None:
    """debootstrap + packages, run inside a throwaway pivot_root namespace (never a chroot)."""
    tmp = out.with_name(out.name + ".tmp")
    root = tmp / "root"
    if is_mount(root):
        unmount_tree(root, run, step)
    log(f"building the second hypervisor's tree {out} (debootstrap {release} + libvirt, ~2-3 minutes)")
    if not (tmp / "debootstrap-done").exists():   # a failed package step keeps the debootstrap
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True)
        run(step, ["debootstrap", "--variant=minbase", "--include=apt-utils,ca-certificates,iproute2,procps",
                   release, str(root), mirror], timeout=1800)
        (tmp / "debootstrap-done").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# lab: never start services from package scripts (no init here)\nexit 101\n")
    policy.chmod(0o755)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    (root / "etc/apt/apt.conf.d/99lab").write_text(
        'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
        '// keep downloaded packages: the collection installs virtiofsd from them\n'
        'Binary::apt::APT::Keep-Downloaded-Packages "true";\n')
    mount_tree(root, "", run, step)
    try:
        script = ("export DEBIAN_FRONTEND=noninteractive; apt-get update -q && "
                  f"apt-get install -y -q {' '.join(TREE_PACKAGES)}")
        if DOWNLOAD_ONLY.get(release):
            script += f" && apt-get install -y -q --download-only {' '.join(DOWNLOAD_ONLY[release])}"
        script += " && ssh-keygen -A"
        proc = start_namespace(root, step, error, command=script)
        out_text = proc.communicate(timeout=1800)[0]
        if proc.returncode != 0:
            raise error(step, f"installing the tree's packages exited {proc.returncode}:\n{out_text[-3000:]}")
    finally:
        unmount_tree(root, run, step)
    (root / "etc/hostname").write_text("vfs-lab-hv2\n")
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/ssh/sshd_config.d/lab.conf").write_text(
        f"Port {SSH_PORT}\nListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nUseDNS no\n")
    with (root / "etc/libvirt/qemu.conf").open("a") as conf:
        conf.write("\n# lab: the host's libvirt already uses /sys/fs/cgroup/machine.slice for its domains\n"
                   "cgroup_controllers = [ ]\n")
    (tmp / "done").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)


def versions(tree: Path) -> dict:
    """Package versions in the tree, from its dpkg status file (no command run in it)."""
    want = {"libvirt-daemon": "libvirt", "qemu-system-x86": "qemu", "python3": "python3"}
    found: dict = {}
    pkg = None
    for line in (tree / "var/lib/dpkg/status").read_text().splitlines():
        if line.startswith("Package: "):
            pkg = line.split(None, 1)[1]
        elif line.startswith("Version: ") and pkg in want:
            found[want[pkg]] = line.split(None, 1)[1]
    return found


def write_authorized_key(tree: Path, pubkey: Path) -> None:
    ssh = tree / "root/.ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh / "authorized_keys").write_text(pubkey.read_text())
    os.chmod(ssh / "authorized_keys", 0o600)


def uri(tree: Path) -> str:
    return f"qemu+unix:///system?socket={tree}/run/libvirt/libvirt-sock"


def start_daemons(init_pid: int, tree: Path, run, step: str, error, log) -> None:
    check_isolation(init_pid, tree, step, error)
    check_host_ptmx(step, error)
    running = {comm for _pid, comm in ns_processes(init_pid)}
    for daemon in ("virtlogd", "libvirtd"):
        if daemon not in running:
            log(f"starting {daemon} in the second hypervisor")
            run(step, ns_argv(init_pid, [f"/usr/sbin/{daemon}", "-d"]))
    if "sshd" not in running:
        run(step, ns_argv(init_pid, ["/usr/sbin/sshd"]))
    sock = tree / "run/libvirt/libvirt-sock"
    deadline = time.time() + 60
    while not sock.exists():
        if time.time() > deadline:
            raise error(step, f"the second hypervisor's libvirtd did not create {sock} (see {tree}/var/log/libvirt)")
        time.sleep(0.3)
    check_host_ptmx(step, error)


def stop_libvirtd(init_pid: int, tree: Path, term_wait: float = 60.0) -> None:
    """End the second hypervisor's libvirtd: SIGTERM, then SIGKILL after ``term_wait`` s.

    libvirtd's own shutdown waits up to 30 s for its drivers (virNetDaemonRun's finish timer), so
    on a loaded machine a TERM alone can outlast a 30 s wait; a KILL leaves its sockets behind,
    which are removed so that ``start_daemons`` waits for the new daemon's socket, not the old one.
    """
    pids = [p for p, comm in ns_processes(init_pid) if comm == "libvirtd"]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for sig, wait in ((signal.SIGKILL, term_wait), (None, 15.0)):
        deadline = time.time() + wait
        while pids and time.time() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists()]
            time.sleep(0.2)
        if not pids or sig is None:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    if pids:
        raise RuntimeError(f"the second hypervisor's libvirtd (pids {pids}) did not end after SIGTERM and SIGKILL")
    for sock in (tree / "run/libvirt").glob("libvirt*-sock*"):
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()


def libvirtd_reachable(tree: Path) -> bool:
    """True when the second hypervisor's libvirtd answers on its socket."""
    import libvirt  # pylint: disable=import-outside-toplevel  # the lab's venv has it; labctl's callers may not
    try:
        conn = libvirt.open(uri(tree))
    except libvirt.libvirtError:
        return False
    try:
        conn.getLibVersion()
        return True
    except libvirt.libvirtError:
        return False
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def ensure_libvirtd(init_pid: int, tree: Path, run, step: str, error, log) -> None:
    """Bring libvirtd back when it does not answer on its socket (a stale one is ended first)."""
    if libvirtd_reachable(tree):
        return
    stop_libvirtd(init_pid, tree)
    start_daemons(init_pid, tree, run, step, error, log)


def ns_run(init_pid: int, argv: list[str], run, step: str):
    return run(step, ns_argv(init_pid, argv))


def make_overlay(init_pid: int, name: str, run, step: str) -> str:
    disk = f"{DISKS}/{name}.qcow2"
    ns_run(init_pid, ["sh", "-c", f"mkdir -p {DISKS} && rm -f {disk} && qemu-img create -q -f qcow2 "
                      f"-b {IMAGE_MOUNT}/disk.raw -F raw {disk} && chmod 0666 {disk}"], run, step)
    return disk


def image_paths() -> dict:
    """The guest image's files as the tree's libvirt sees them."""
    return {"kernel": f"{IMAGE_MOUNT}/vmlinuz", "initrd": f"{IMAGE_MOUNT}/initrd.img",
            "base_image": f"{IMAGE_MOUNT}/disk.raw"}


def release_of(tree: Path) -> int:
    m = re.match(r"(\d+)", (tree / "etc/debian_version").read_text().strip())
    return int(m.group(1)) if m else 13
