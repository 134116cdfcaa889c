"""Kernel oracle: runs *inside* a sandbox, registers each input for real.

Protocol: one hex-encoded register string per stdin line; one JSON object per
stdout line: {"errno": name|null, "name": hex|null, "entry": hex|null}.
After each accepted registration the entry is read back and removed, so the
table holds only the fixture entry ``existing`` between inputs.
"""

from __future__ import annotations

import errno
import json
import os
import sys

MNT = os.environ.get("BINFMTCTL_MOUNT", "/proc/sys/fs/binfmt_misc").encode()
FIXTURE = b":existing:M::BMXexist::/bin/true:\n"
CONTROL = {b"register", b"status"}


def entries() -> set[bytes]:
    return set(os.listdir(MNT)) - CONTROL


def write(path: bytes, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def main() -> None:
    with open("/proc/self/uid_map") as f:
        initial = f.read().split() == ["0", "0", "4294967295"]
    if initial:
        sys.exit("refusing to run in the initial user namespace")
    for name in entries():
        write(MNT + b"/" + name, b"-1")
    write(MNT + b"/register", FIXTURE)
    base = entries()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        data = bytes.fromhex(line.strip())
        out: dict[str, object] = {"errno": None, "name": None, "entry": None}
        try:
            write(MNT + b"/register", data)
        except OSError as e:
            out["errno"] = errno.errorcode.get(e.errno or 0, str(e.errno))
        new = entries() - base
        for name in new:
            path = MNT + b"/" + name
            with open(path, "rb") as f:
                out["entry"] = f.read().hex()
            out["name"] = name.hex()
            write(path, b"-1")
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
