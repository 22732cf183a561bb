# SPDX-License-Identifier: GPL-3.0-or-later
"""The real lab for virtiofs.libvirt: libvirtd + QEMU (TCG) + Debian guest + virtiofsd sources.

Run through ``tests/lab/lab up|down|status``. Importable by tests (``clone_guest``,
``destroy_guest``, ``wait_ssh``, ``guest_ssh``, ``load_state``). Runs with the system
Python (python3-libvirt, python3-lxml), on Debian 12 and Debian 13, without systemd.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hypervisor2 as hv2  # noqa: E402 (tests/lab/hypervisor2.py)

CACHE = Path(os.environ.get("VIRTIOFS_LAB_CACHE", "/var/cache/virtiofs-libvirt-lab"))
STATE = Path(os.environ.get("VIRTIOFS_LAB_STATE", "/var/lib/virtiofs-libvirt-lab"))
HERE = Path(__file__).resolve().parent
URI = "qemu:///system"
LAB_DOMAIN = "vfs-lab"
LAB_SSH_PORT = 2222
HTTP_PORT = 8631
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"

GUEST_PACKAGES = [
    "systemd-sysv", "udev", "python3", "openssh-server", "linux-image-amd64",
    "initramfs-tools", "kmod", "iproute2", "procps", "util-linux", "e2fsprogs",
]
# Bump when the image recipe below changes in a way the package list does not show.
IMAGE_RECIPE_VERSION = "3"
VIRTIOFSD_RECIPE_VERSION = "2"
RUST_MEMBER = "target/x86_64-unknown-linux-musl/release/virtiofsd"


class LabError(Exception):
    def __init__(self, step: str, why: str):
        super().__init__(f"FAILED at step {step}: {why}")
        self.step = step


def log(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


def run(step: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    try:
        proc = subprocess.run(argv, check=False, **kw)
    except OSError as exc:
        raise LabError(step, f"{argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        tail = ((proc.stdout or "") + (proc.stderr or ""))[-3000:]
        raise LabError(step, f"`{' '.join(argv)}` exited {proc.returncode}:\n{tail}")
    return proc


def debian_release() -> int:
    text = Path("/etc/debian_version").read_text().strip()
    m = re.match(r"(\d+)", text)
    if m:
        return int(m.group(1))
    return 13 if text.startswith("trixie") else 12


def debian_mirror() -> str:
    """The mirror URI the machine's own apt sources use (never edits them)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for line in Path(path).read_text().splitlines():
            if line.startswith("URIs:"):
                for uri in line.split()[1:]:
                    if "security" not in uri:
                        return uri.rstrip("/")
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(path):
            for line in Path(path).read_text().splitlines():
                parts = line.split()
                if parts[:1] == ["deb"] and "security" not in line:
                    uri = [p for p in parts[1:] if not p.startswith("[")][0]
                    return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def load_state() -> dict:
    try:
        return json.loads((STATE / "lab.json").read_text())
    except FileNotFoundError:
        return {}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _started() -> dict:
    try:
        return json.loads((STATE / "started.json").read_text())
    except FileNotFoundError:
        return {"pids": {}, "domains": []}


def _record_started(kind: str, key: str, value) -> None:
    data = _started()
    if kind == "pid":
        data["pids"][key] = value
    elif key not in data["domains"]:
        data["domains"].append(key)
    _write_json(STATE / "started.json", data)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


def _pgrep(name: str) -> list[int]:
    """Live processes called ``name`` in this PID namespace (not the second hypervisor's)."""
    pids = []
    own = os.readlink("/proc/self/ns/pid")
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if ((d / "comm").read_text().strip() == name and os.readlink(d / "ns/pid") == own
                        and _pid_alive(int(d.name))):
                    pids.append(int(d.name))
    return pids


# ---------------------------------------------------------------- daemons

def ensure_daemons() -> None:
    step = "daemons"
    # Debian's udev rule gives /dev/kvm root:kvm 0660; without it libvirt re-probes QEMU on
    # every call (defines take 30 s+). Domains stay TCG (type='qemu').
    if os.path.exists("/dev/kvm"):
        with contextlib.suppress(Exception):
            shutil.chown("/dev/kvm", group="kvm")
            os.chmod("/dev/kvm", 0o660)
    modular = debian_release() >= 13 and shutil.which("virtqemud")
    wanted = ["virtlogd", "virtqemud"] if modular else ["virtlogd", "libvirtd"]
    if modular:
        for extra in ("virtnetworkd", "virtstoraged", "virtnodedevd", "virtsecretd"):
            if shutil.which(extra):
                wanted.append(extra)
    Path("/run/libvirt").mkdir(parents=True, exist_ok=True)
    for daemon in wanted:
        if _pgrep(daemon):
            continue
        exe = shutil.which(daemon) or f"/usr/sbin/{daemon}"
        log(f"starting {daemon}")
        run(step, [exe, "-d"])
        time.sleep(0.5)
        pids = _pgrep(daemon)
        if not pids:
            raise LabError(step, f"{daemon} did not stay up (see /var/log/libvirt/)")
        _record_started("pid", daemon, pids[0])
    import libvirt  # noqa: PLC0415 (system python3-libvirt)

    libvirt.registerErrorHandler(lambda *_args: None, None)

    deadline = time.time() + 60
    while True:
        try:
            conn = libvirt.open(URI)
            conn.close()
            return
        except libvirt.libvirtError as exc:
            if time.time() > deadline:
                raise LabError(step, f"{URI} does not answer: {exc}") from exc
            time.sleep(1)


# ---------------------------------------------------------------- guest image

def _recipe_hash(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(repr(p).encode())
    return h.hexdigest()[:12]


def ensure_image(rel: str = "bookworm") -> dict:
    step = "guest-image"
    key = _recipe_hash(IMAGE_RECIPE_VERSION, rel, GUEST_PACKAGES)
    out = CACHE / f"image-{key}"
    info = {
        "base_image": str(out / "disk.raw"),
        "kernel": str(out / "vmlinuz"),
        "initrd": str(out / "initrd.img"),
        "ssh_key": str(out / "id_ed25519"),
        "image_dir": str(out),
    }
    if (out / "done").exists():
        log(f"guest image cached: {out}")
        return info
    log(f"building guest image {out} (debootstrap {rel}, ~2-4 minutes)")
    shutil.rmtree(out, ignore_errors=True)
    tmp = CACHE / f"image-{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    root = tmp / "root"
    root.mkdir(parents=True)
    run(step, ["debootstrap", "--variant=minbase", "--include=" + ",".join(GUEST_PACKAGES),
               rel, str(root), debian_mirror()], timeout=1800)
    run(step, ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "virtiofs-lab",
               "-f", str(tmp / "id_ed25519")])
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(tmp / "id_ed25519.pub", ssh_dir / "authorized_keys")
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    hostname = "vfs-lab-guest" if rel == "bookworm" else f"vfs-lab-guest-{rel}"
    (root / "etc/hostname").write_text(f"{hostname}\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n")
    (root / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    net = root / "etc/systemd/network/10-lab.network"
    net.write_text("[Match]\nName=e*\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n")
    # Quiet, fast boots: no waiting for "online", no apt timers.
    for unit in ("systemd-networkd", "ssh"):
        run(step, ["chroot", str(root), "systemctl", "enable", unit])
    for unit in ("systemd-networkd-wait-online.service", "apt-daily.timer",
                 "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer"):
        run(step, ["chroot", str(root), "systemctl", "mask", unit])
    (root / "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
    (root / "etc/ssh/sshd_config.d/lab.conf").write_text("UseDNS no\nPermitRootLogin prohibit-password\n")
    # The guest must be able to mount virtiofs and 9p (for comparisons) from its initramfs-less
    # module tree; modules load on demand.
    vmlinuz = sorted(glob.glob(str(root / "boot/vmlinuz-*")))
    initrd = sorted(glob.glob(str(root / "boot/initrd.img-*")))
    if not vmlinuz or not initrd:
        raise LabError(step, "no kernel/initrd in the debootstrap tree")
    shutil.copy(vmlinuz[-1], tmp / "vmlinuz")
    shutil.copy(initrd[-1], tmp / "initrd.img")
    for f in glob.glob(str(root / "var/cache/apt/archives/*.deb")):
        os.unlink(f)
    run(step, ["truncate", "-s", "3G", str(tmp / "disk.raw")])
    run(step, ["mkfs.ext4", "-q", "-F", "-L", "labroot", "-d", str(root), str(tmp / "disk.raw")])
    shutil.rmtree(root)
    (tmp / "done").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    os.rename(tmp, out)
    return info


# ---------------------------------------------------------------- virtiofsd sources

def _private_apt(work: Path) -> list[str]:
    lists = work / "apt-lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    archives = work / "apt-archives"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    srcs = work / "trixie.sources"
    srcs.write_text(
        "Types: deb\n"
        f"URIs: {debian_mirror()}\n"
        "Suites: trixie\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    return [
        "-o", f"Dir::Etc::SourceList={srcs}", "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache::Archives={archives}",
        "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
        "-o", "APT::Sandbox::User=root",
    ]


def ensure_virtiofsd() -> dict:
    """Registry tree + source (from Debian 13's librust-*-dev packages), a binary built offline,
    and a release-style zip with its sha256. Nothing is installed on the host."""
    step = "virtiofsd-sources"
    key = _recipe_hash(VIRTIOFSD_RECIPE_VERSION, "trixie", RUST_MEMBER)
    out = CACHE / f"virtiofsd-{key}"
    if (out / "done").exists():
        log(f"virtiofsd artifacts cached: {out}")
        return json.loads((out / "info.json").read_text())
    log(f"building virtiofsd artifacts {out} (download crates, offline cargo build, ~3-6 minutes)")
    tmp = CACHE / f"virtiofsd-{key}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    opts = _private_apt(tmp)
    run(step, ["apt-get", *opts, "update"], timeout=900)
    sim = run(step, ["apt-get", *opts, "-s", "install", "--no-install-recommends",
                     "librust-virtiofsd-dev"], timeout=600).stdout
    pkgs = sorted(set(re.findall(r"^Inst (librust-\S+)", sim, re.M)))
    if not any(p == "librust-virtiofsd-dev" for p in pkgs):
        pkgs.append("librust-virtiofsd-dev")
    debs = tmp / "debs"
    debs.mkdir()
    run(step, ["apt-get", *opts, "download", *pkgs], cwd=debs, timeout=1800)
    tree = tmp / "tree"
    for deb in sorted(debs.glob("*.deb")):
        run(step, ["dpkg-deb", "-x", str(deb), str(tree)])
    registry = tree / "usr/share/cargo/registry"
    srcs = sorted(registry.glob("virtiofsd-*"))
    if not srcs:
        raise LabError(step, "librust-virtiofsd-dev did not provide virtiofsd sources")
    src = srcs[-1]
    version = src.name.split("-", 1)[1]
    source_dir = tmp / f"virtiofsd-{version}"
    shutil.copytree(src, source_dir, symlinks=True)
    with contextlib.suppress(FileNotFoundError):
        (source_dir / "Cargo.lock").unlink()
    with tarfile.open(tmp / f"virtiofsd-{version}.tar.gz", "w:gz") as tf:
        tf.add(source_dir, arcname=f"virtiofsd-{version}")
    # Offline build through cargo source replacement: crates-io is replaced by the directory
    # source of the unpacked librust-*-dev packages (plain source trees), and Cargo.lock is
    # gone (that source rarely holds exactly the locked versions).
    build = tmp / "build"
    shutil.copytree(source_dir, build, symlinks=True)
    (build / ".cargo").mkdir(exist_ok=True)
    (build / ".cargo/config.toml").write_text(
        '[source.crates-io]\nreplace-with = "debian"\n\n'
        f'[source.debian]\ndirectory = "{registry}"\n\n[net]\noffline = true\n'
    )
    cargo = shutil.which("cargo") or str(Path.home() / ".cargo/bin/cargo")
    env = dict(os.environ, CARGO_HOME=str(tmp / "cargo-home"), CARGO_TARGET_DIR=str(build / "target"))
    log(f"cargo build --release --offline (virtiofsd {version})")
    run(step, [cargo, "build", "--release", "--offline"], cwd=build, env=env, timeout=3600)
    binary = build / "target/release/virtiofsd"
    ver_out = run(step, [str(binary), "--version"]).stdout.strip()
    if not re.match(r"^virtiofsd \d+\.\d+\.\d+", ver_out):
        raise LabError(step, f"built binary reports {ver_out!r}")
    art = tmp / "artifacts"
    art.mkdir()
    shutil.copy2(binary, tmp / "virtiofsd")
    zpath = art / f"virtiofsd-v{version}.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zi = zipfile.ZipInfo(RUST_MEMBER, date_time=time.localtime()[:6])
        zi.external_attr = (0o100755 << 16)
        zi.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(zi, binary.read_bytes())
    sha = hashlib.sha256(zpath.read_bytes()).hexdigest()
    (art / f"{zpath.name}.sha256").write_text(f"{sha}  {zpath.name}\n")
    shutil.copy(tmp / f"virtiofsd-{version}.tar.gz", art)
    shutil.rmtree(build)
    shutil.rmtree(debs)
    shutil.rmtree(tmp / "cargo-home", ignore_errors=True)
    final = {
        "crate_version": version,
        "virtiofsd_binary": str(out / "virtiofsd"),
        "registry_dir": str(out / "tree/usr/share/cargo/registry"),
        "source_dir": str(out / f"virtiofsd-{version}"),
        "source_archive": str(out / "artifacts" / f"virtiofsd-{version}.tar.gz"),
        "artifact_dir": str(out / "artifacts"),
        "artifact_file": zpath.name,
        "artifact_sha256": sha,
    }
    _write_json(tmp / "info.json", final)
    (tmp / "done").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    os.rename(tmp, out)
    return final


# ---------------------------------------------------------------- artifact server

def ensure_http(artifact_dir: str) -> dict:
    step = "artifact-server"
    access_log = STATE / "http-access.log"
    pidfile = STATE / "http.pid"
    served = STATE / "www"
    if served.is_symlink() or served.exists():
        if served.resolve() != Path(artifact_dir).resolve():
            served.unlink()
    if not served.exists():
        served.symlink_to(artifact_dir)
    with contextlib.suppress(FileNotFoundError, ValueError):
        pid = int(pidfile.read_text())
        if _pid_alive(pid) and _port_open(HTTP_PORT):
            return {"artifact_base_url": f"http://127.0.0.1:{HTTP_PORT}", "artifact_access_log": str(access_log)}
    log(f"starting artifact server on 127.0.0.1:{HTTP_PORT}")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "artifact_server.py"), "--bind", "127.0.0.1", "--port", str(HTTP_PORT),
         "--directory", str(served), "--access-log", str(access_log)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(STATE / "http-server.err", "ab"), start_new_session=True,
    )
    pidfile.write_text(str(proc.pid))
    _record_started("pid", "artifact-server", proc.pid)
    deadline = time.time() + 20
    while not _port_open(HTTP_PORT):
        if proc.poll() is not None or time.time() > deadline:
            raise LabError(step, f"artifact server did not listen (see {STATE / 'http-server.err'})")
        time.sleep(0.2)
    return {"artifact_base_url": f"http://127.0.0.1:{HTTP_PORT}", "artifact_access_log": str(access_log)}


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# ---------------------------------------------------------------- domains

def _template():
    from lxml import etree  # noqa: PLC0415

    parser = etree.XMLParser(remove_blank_text=True)
    return etree.parse(str(HERE / "domain-template.xml"), parser)


def guest_xml(name: str, ssh_port: int, disk: str, image: dict, memory_mib: int = 1024,
              shared_memory: bool = False, filesystems: list[dict] | None = None, extra_root_ports: int = 0) -> str:
    """The lab guest's domain XML (from domain-template.xml), filled in with lxml.

    ``filesystems``: dicts with ``tag``, ``source``, optional ``binary`` and ``driver``
    (``virtiofs`` default, or ``path`` for virtio-9p) and ``readonly``.
    """
    from lxml import etree  # noqa: PLC0415

    doc = _template()
    dom = doc.getroot()
    dom.find("name").text = name
    dom.find("memory").text = str(memory_mib * 1024)
    dom.find("currentMemory").text = str(memory_mib * 1024)
    os_el = dom.find("os")
    os_el.find("kernel").text = image["kernel"]
    os_el.find("initrd").text = image["initrd"]
    dom.find("devices/disk/source").set("file", disk)
    serial = dom.find("devices/serial")
    serial.insert(0, etree.Element("log", file=f"/var/log/libvirt/qemu/{name}-serial.log", append="off"))
    if shared_memory:
        mb = etree.Element("memoryBacking")
        etree.SubElement(mb, "source", type="memfd")
        etree.SubElement(mb, "access", mode="shared")
        dom.find("currentMemory").addnext(mb)
    devices = dom.find("devices")
    ports = devices.findall("controller[@model='pcie-root-port']")
    for _port in range(extra_root_ports):  # more spare slots for hot-plugged devices
        ports[-1].addnext(etree.Element("controller", type="pci", model="pcie-root-port"))
    for fs in filesystems or []:
        drv = fs.get("driver", "virtiofs")
        el = etree.SubElement(devices, "filesystem", type="mount",
                              accessmode="passthrough" if drv == "virtiofs" else fs.get("accessmode", "mapped"))
        etree.SubElement(el, "driver", type=drv)
        if drv == "virtiofs" and fs.get("binary"):
            etree.SubElement(el, "binary", path=fs["binary"])
        etree.SubElement(el, "source", dir=fs["source"])
        etree.SubElement(el, "target", dir=fs["tag"])
        if fs.get("readonly"):
            etree.SubElement(el, "readonly")
    qargs = dom.find(f"{{{QEMU_NS}}}commandline")
    for arg in qargs.findall(f"{{{QEMU_NS}}}arg"):
        val = arg.get("value")
        if "hostfwd=" in val:
            arg.set("value", re.sub(r"hostfwd=tcp:127\.0\.0\.1:\d+-:22", f"hostfwd=tcp:127.0.0.1:{ssh_port}-:22", val))
    return etree.tostring(doc, pretty_print=True, encoding="unicode")


def _overlay(name: str, base: str) -> str:
    disks = STATE / "disks"
    disks.mkdir(parents=True, exist_ok=True)
    path = disks / f"{name}.qcow2"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    run("domain", ["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", str(path)])
    os.chmod(path, 0o666)
    return str(path)


def hypervisor_uri(hypervisor: str = "hypervisor", state: dict | None = None) -> str:
    """The libvirt URI of a lab hypervisor as this machine reaches it."""
    if hypervisor == "hypervisor":
        return URI
    state = state or load_state()
    if hv2.NAME not in state:
        raise LabError("domain", f"{hypervisor} is not up (no {hv2.NAME} in lab.json): run tests/lab/lab up")
    return state[hv2.NAME]["uri"]


def clone_guest(name: str, ssh_port: int, start: bool = True, wait: bool = True,
                shared_memory: bool = False, filesystems: list[dict] | None = None,
                memory_mib: int = 1024, state: dict | None = None, hypervisor: str = "hypervisor",
                extra_root_ports: int = 0) -> dict:
    """Define (and boot) a TCG guest from a fresh overlay of the lab's base image.

    ``hypervisor``: ``hypervisor`` (this machine's libvirt, the Debian 12 guest image) or
    ``hypervisor2`` (the second hypervisor's libvirt, its own guest image; paths in
    ``filesystems`` are then paths inside its tree). Returns ``{"name", "ssh_port", "ssh_key",
    "disk", "uri"}``. Any existing domain of that name is removed first. Tests must call
    :func:`destroy_guest` when done.
    """
    import libvirt  # noqa: PLC0415

    state = state or load_state()
    if not state:
        raise LabError("domain", "lab is not up (no lab.json): run tests/lab/lab up")
    uri = hypervisor_uri(hypervisor, state)
    destroy_guest(name, hypervisor=hypervisor, state=state)
    if hypervisor == "hypervisor":
        disk = _overlay(name, state["base_image"])
        image, key = state, state["ssh_key"]
    else:
        h2 = state[hv2.NAME]
        disk = hv2.make_overlay(h2["init_pid"], name, run, "domain")
        image, key = hv2.image_paths(), h2["guest_ssh_key"]
    xml = guest_xml(name, ssh_port, disk, image, memory_mib=memory_mib,
                    shared_memory=shared_memory, filesystems=filesystems, extra_root_ports=extra_root_ports)
    conn = libvirt.open(uri)
    try:
        dom = conn.defineXML(xml)
        _record_started("domain", name, None)
        if start:
            dom.create()
    finally:
        conn.close()
    info = {"name": name, "ssh_port": ssh_port, "ssh_key": key, "disk": disk, "uri": uri}
    if start and wait:
        wait_ssh(ssh_port, key=key)
    return info


def destroy_guest(name: str, hypervisor: str = "hypervisor", state: dict | None = None) -> None:
    import libvirt  # noqa: PLC0415

    libvirt.registerErrorHandler(lambda *_args: None, None)

    conn = libvirt.open(hypervisor_uri(hypervisor, state))
    try:
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            return
        if dom.isActive():
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
        flags = 0
        for f in ("VIR_DOMAIN_UNDEFINE_NVRAM", "VIR_DOMAIN_UNDEFINE_MANAGED_SAVE"):
            flags |= getattr(libvirt, f, 0)
        dom.undefineFlags(flags)
    finally:
        conn.close()
    if hypervisor == "hypervisor":
        disk = STATE / "disks" / f"{name}.qcow2"
    else:
        disk = Path((state or load_state())[hv2.NAME]["tree"]) / hv2.DISKS.lstrip("/") / f"{name}.qcow2"
    with contextlib.suppress(FileNotFoundError):
        disk.unlink()


def ssh_argv(port: int, key: str | None = None) -> list[str]:
    key = key or load_state()["ssh_key"]
    return ["ssh", "-i", key, "-p", str(port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=5", "-o", "BatchMode=yes", "root@127.0.0.1"]


def guest_ssh(port: int, command: str, check: bool = True, timeout: int = 120,
              key: str | None = None) -> subprocess.CompletedProcess:
    """Run ``command`` in a guest through SSH; returns the CompletedProcess.

    ``key``: the guest image's SSH key (default: the Debian 12 image's; a guest of the second
    hypervisor needs ``lab["hypervisor2"]["guest_ssh_key"]``)."""
    proc = subprocess.run(ssh_argv(port, key) + [command], check=False, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"guest command {command!r} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def wait_ssh(port: int, timeout: int = 300, key: str | None = None) -> None:
    """Wait until the guest answers SSH and systemd finished booting (running or degraded)."""
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc = subprocess.run(ssh_argv(port, key) + ["systemctl is-system-running --wait"], check=False,
                                  capture_output=True, text=True, timeout=60)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                return
            last = state or proc.stderr.strip()
        time.sleep(2)
    raise LabError("domain", f"guest on port {port} not reachable over SSH after {timeout}s ({last})")


def ensure_lab_domain(state: dict, wait: bool = True) -> None:
    import libvirt  # noqa: PLC0415

    conn = libvirt.open(URI)
    try:
        try:
            dom = conn.lookupByName(LAB_DOMAIN)
        except libvirt.libvirtError:
            dom = None
    finally:
        conn.close()
    if dom is None:
        log(f"defining and booting {LAB_DOMAIN} (TCG)")
        clone_guest(LAB_DOMAIN, LAB_SSH_PORT, wait=False, state=state)
    elif not dom.isActive():
        log(f"starting {LAB_DOMAIN}")
        dom.create()
    if wait:
        wait_ssh(LAB_SSH_PORT, key=state["ssh_key"])


# ---------------------------------------------------------------- the second hypervisor

def _hv2_release() -> str:
    return hv2.other_release(debian_release())[0]


def ensure_hv2_tree() -> Path:
    """The second hypervisor's Debian tree (built once, cached by its recipe)."""
    step = "hypervisor2-tree"
    rel = _hv2_release()
    key = _recipe_hash(hv2.TREE_RECIPE_VERSION, rel, hv2.TREE_PACKAGES, hv2.DOWNLOAD_ONLY)
    out = CACHE / f"hv2-{key}"
    if (out / "done").exists():
        log(f"second hypervisor tree cached: {out}")
    else:
        hv2.build_tree(out, rel, debian_mirror(), run, step, LabError, log)
    return hv2._safe_tree(out / "root", CACHE)


def _hv2_saved() -> dict:
    try:
        return json.loads((STATE / "hypervisor2.json").read_text())
    except FileNotFoundError:
        return {}


def ensure_hypervisor2(state: dict, tree: Path, image2: dict) -> dict:
    """Mounts, the pivot_root namespace, virtlogd + libvirtd + sshd in it, and its guest."""
    import libvirt  # noqa: PLC0415

    step = "hypervisor2"
    hv2.check_host_ptmx(step, LabError)
    if not hv2.ns_alive(_hv2_saved().get("init_pid"), tree):
        # no namespace (first start, or the machine's processes ended): fresh /dev and /run
        hv2.unmount_tree(tree, run, step)
    hv2.mount_tree(tree, image2["image_dir"], run, step)
    hv2.write_authorized_key(tree, Path(state["ssh_key"] + ".pub"))
    saved = _hv2_saved()
    init = saved.get("init_pid")
    if not hv2.ns_alive(init, tree):
        log(f"starting the second hypervisor's namespace (pivot_root into {tree})")
        proc = hv2.start_namespace(tree, step, LabError)
        init = hv2.wait_init(proc, step, LabError)
        _write_json(STATE / "hypervisor2.json", {"init_pid": init, "unshare_pid": proc.pid, "tree": str(tree)})
    hv2.start_daemons(init, tree, run, step, LabError, log)
    uri = hv2.uri(tree)
    deadline = time.time() + 90
    while True:
        try:
            conn = libvirt.open(uri)
            break
        except libvirt.libvirtError as exc:
            if time.time() > deadline:
                raise LabError(step, f"{uri} does not answer: {exc}") from exc
            time.sleep(1)
    try:
        libvirt_version = conn.getLibVersion()
        try:
            dom = conn.lookupByName(hv2.DOMAIN)
        except libvirt.libvirtError:
            dom = None
    finally:
        conn.close()
    vers = hv2.versions(tree)
    info = {
        "name": hv2.NAME,
        "tree": str(tree),
        "uri": uri,
        "init_pid": init,
        "debian_release": hv2.release_of(tree),
        "libvirt_version": "{}.{}.{}".format(libvirt_version // 1000000, libvirt_version // 1000 % 1000,
                                             libvirt_version % 1000),
        "qemu_package": vers.get("qemu"),
        "ssh_port": hv2.SSH_PORT,
        "domain": hv2.DOMAIN,
        "guest_ssh_port": hv2.GUEST_SSH_PORT,
        "guest_ssh_key": image2["ssh_key"],
        "guest_image_dir": image2["image_dir"],
        "guest_kernel": image2["kernel"],
    }
    state[hv2.NAME] = info
    if dom is None:
        log(f"defining and booting {hv2.DOMAIN} on the second hypervisor (TCG)")
        clone_guest(hv2.DOMAIN, hv2.GUEST_SSH_PORT, wait=False, state=state, hypervisor=hv2.NAME)
    elif not dom.isActive():
        log(f"starting {hv2.DOMAIN} on the second hypervisor")
        dom.create()
    hv2.check_host_ptmx(step, LabError)
    return info


def stop_hypervisor2() -> None:
    import libvirt  # noqa: PLC0415

    saved = _hv2_saved()
    if not saved:
        return
    tree = Path(saved["tree"])
    init = saved.get("init_pid")
    if hv2.ns_alive(init, tree):
        libvirt.registerErrorHandler(lambda *_args: None, None)
        with contextlib.suppress(libvirt.libvirtError):
            conn = libvirt.open(hv2.uri(tree))
            try:
                for dom in conn.listAllDomains():
                    log(f"removing domain {dom.name()} from the second hypervisor")
                    with contextlib.suppress(libvirt.libvirtError):
                        if dom.isActive():
                            dom.destroy()
                        dom.undefine()
            finally:
                conn.close()
        hv2.stop_namespace(init, log)
    hv2.unmount_tree(hv2._safe_tree(tree, CACHE), run, "down")
    with contextlib.suppress(FileNotFoundError):
        (STATE / "hypervisor2.json").unlink()


def _ssh_host(port: int, key: str, **hostvars) -> dict:
    """Inventory variables of a lab host reached over SSH on a loopback port."""
    return {"ansible_host": "127.0.0.1", "ansible_port": port, "ansible_user": "root",
            "ansible_ssh_private_key_file": key,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3", **hostvars}


def inventory(state: dict) -> dict:
    """The lab's inventory: group hypervisors (this machine; the second hypervisor over SSH) and
    group guests (one per hypervisor)."""
    hypervisors = {"hypervisor": {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
                                  "lab_debian_release": state["debian_release"], "lab_domain": state["domain"]}}
    guests = {"guest": _ssh_host(state["ssh_port"], state["ssh_key"], virtiofs_domain=state["domain"],
                                 virtiofs_hypervisor="hypervisor")}
    h2 = state.get(hv2.NAME)
    if h2:
        hypervisors[hv2.NAME] = _ssh_host(h2["ssh_port"], state["ssh_key"], lab_debian_release=h2["debian_release"],
                                          lab_domain=h2["domain"])
        guests[hv2.GUEST_NAME] = _ssh_host(h2["guest_ssh_port"], h2["guest_ssh_key"], virtiofs_domain=h2["domain"],
                                           virtiofs_hypervisor=hv2.NAME)
    return {"all": {"children": {"hypervisors": {"hosts": hypervisors}, "guests": {"hosts": guests}},
                    "vars": {"lab_state_file": str(STATE / "lab.json")}}}


def write_inventory(state: dict) -> None:
    h2 = state.get(hv2.NAME, {})
    header = (
        "# Written by tests/lab/lab up (JSON, which is YAML). Host \"hypervisor\" is this machine\n"
        f"# (Debian {state['debian_release']}); host \"{hv2.NAME}\" is the second hypervisor (Debian "
        f"{h2.get('debian_release', '-')}, libvirt {h2.get('libvirt_version', '-')}, its own mount and PID\n"
        f"# namespace in {h2.get('tree', '-')}, sshd on a loopback port); each has a guest reached over a\n"
        "# loopback-only port forward.\n"
    )
    inv = STATE / "inventory.yml"
    tmp = inv.with_suffix(".tmp")
    tmp.write_text(header + json.dumps(inventory(state), indent=2) + "\n")
    os.replace(tmp, inv)


# ---------------------------------------------------------------- commands

def cmd_up() -> int:
    t0 = time.time()
    STATE.mkdir(parents=True, exist_ok=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    hv2.check_host_ptmx("preflight", LabError)
    ensure_daemons()
    # The cached artefacts are independent: build what is missing side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        f_image = pool.submit(ensure_image, "bookworm")
        f_vfs = pool.submit(ensure_virtiofsd)
        f_tree = pool.submit(ensure_hv2_tree)
        f_image2 = pool.submit(ensure_image, "trixie")  # the second guest is always Debian 13
        image, vfs, tree, image2 = f_image.result(), f_vfs.result(), f_tree.result(), f_image2.result()
    http = ensure_http(vfs["artifact_dir"])
    state = {
        "uri": URI,
        "domain": LAB_DOMAIN,
        "ssh_port": LAB_SSH_PORT,
        "debian_release": debian_release(),
        **image,
        **vfs,
        **http,
        "artifact_url": f"{http['artifact_base_url']}/{vfs['artifact_file']}",
        "source_archive_url": f"{http['artifact_base_url']}/{Path(vfs['source_archive']).name}",
        "inventory": str(STATE / "inventory.yml"),
    }
    ensure_lab_domain(state, wait=False)
    ensure_hypervisor2(state, tree, image2)
    wait_ssh(LAB_SSH_PORT, key=state["ssh_key"])
    wait_ssh(hv2.GUEST_SSH_PORT, key=image2["ssh_key"])
    write_inventory(state)
    _write_json(STATE / "lab.json", state)
    log(f"lab up in {time.time() - t0:.0f}s: hypervisor (Debian {state['debian_release']}) + {hv2.NAME} "
        f"(Debian {state[hv2.NAME]['debian_release']}, libvirt {state[hv2.NAME]['libvirt_version']}); "
        f"inventory {STATE / 'inventory.yml'}")
    return 0


def cmd_status() -> int:
    state = load_state()
    if not state:
        print("lab: down (no lab.json)")
        return 1
    import libvirt  # noqa: PLC0415

    print(f"lab state: {STATE / 'lab.json'}")
    try:
        conn = libvirt.open(URI)
        for dom in conn.listAllDomains():
            print(f"domain {dom.name()}: {'running' if dom.isActive() else 'shut off'}")
        conn.close()
    except libvirt.libvirtError as exc:
        print(f"libvirt: unreachable ({exc})")
        return 1
    print(f"artifact server: {'listening' if _port_open(HTTP_PORT) else 'down'} on 127.0.0.1:{HTTP_PORT}")
    rc = 0
    h2 = state.get(hv2.NAME)
    saved = _hv2_saved()
    if not h2 or not hv2.ns_alive(saved.get("init_pid"), Path(h2["tree"])):
        print(f"{hv2.NAME}: down")
        rc = 1
    else:
        print(f"{hv2.NAME}: Debian {h2['debian_release']}, libvirt {h2['libvirt_version']}, namespace init "
              f"{saved['init_pid']}, tree {h2['tree']}, sshd {'listening' if _port_open(h2['ssh_port']) else 'down'} "
              f"on 127.0.0.1:{h2['ssh_port']}")
        try:
            conn = libvirt.open(h2["uri"])
            for dom in conn.listAllDomains():
                print(f"{hv2.NAME} domain {dom.name()}: {'running' if dom.isActive() else 'shut off'}")
            conn.close()
        except libvirt.libvirtError as exc:
            print(f"{hv2.NAME} libvirt: unreachable ({exc})")
            rc = 1
    print(f"inventory: {state['inventory']}")
    return rc


def cmd_down() -> int:
    stop_hypervisor2()
    started = _started()
    with contextlib.suppress(Exception):
        for name in list(started.get("domains", [])):
            log(f"removing domain {name}")
            destroy_guest(name)
    for name, pid in sorted(started.get("pids", {}).items(), key=lambda kv: kv[0] != "artifact-server"):
        if pid and _pid_alive(pid):
            log(f"stopping {name} (pid {pid})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            for _attempt in range(50):
                if not _pid_alive(pid):
                    break
                time.sleep(0.1)
    for f in ("lab.json", "started.json", "http.pid", "inventory.yml"):
        with contextlib.suppress(FileNotFoundError):
            (STATE / f).unlink()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("up", "down", "status"):
        print("usage: tests/lab/lab up|down|status", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("[lab] FAILED at step preflight: the lab needs root (libvirt qemu:///system)", file=sys.stderr)
        return 1
    try:
        return {"up": cmd_up, "down": cmd_down, "status": cmd_status}[argv[0]]()
    except LabError as exc:
        print(f"[lab] {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # libvirt errors and the like: name the command, not a traceback
        print(f"[lab] FAILED during {argv[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
