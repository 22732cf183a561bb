# SPDX-License-Identifier: GPL-3.0-or-later
"""Power off on the ACPI power button, for minimal guests without systemd-logind.

The lab image is a minbase Debian without D-Bus, so systemd-logind does not run and nothing
acts on the power button that libvirt presses for a graceful shutdown (virDomainShutdown).
This handler reads the "Power Button" input device and runs ``systemctl poweroff`` on
KEY_POWER, which is what logind does on a full installation.
"""
import struct
import subprocess
import time

EV_KEY = 1
KEY_POWER = 116
EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux


def power_button_device():
    with open("/proc/bus/input/devices", encoding="utf-8") as f:
        blocks = f.read().split("\n\n")
    for block in blocks:
        if 'Name="Power Button"' not in block:
            continue
        for line in block.splitlines():
            if line.startswith("H: Handlers="):
                for handler in line.split("=", 1)[1].split():
                    if handler.startswith("event"):
                        return "/dev/input/" + handler
    return None


def main():
    path = power_button_device()
    while path is None:
        time.sleep(2)
        path = power_button_device()
    with open(path, "rb") as dev:
        while True:
            data = dev.read(EVENT.size)
            if len(data) < EVENT.size:
                time.sleep(1)
                continue
            etype, code, value = EVENT.unpack(data)[2:]
            if etype == EV_KEY and code == KEY_POWER and value == 1:
                subprocess.run(["systemctl", "poweroff"], check=False)


if __name__ == "__main__":
    main()
