"""Run a command as root of a new user + mount namespace that maps uids and gids 0-65535 one to
one, with setgroups allowed: what a container engine needs (image layers owned by many ids,
setgroups in RUN steps), and where a private binfmt_misc can be mounted (Linux >= 6.7) so the
host's table is never touched. Must be started as real root.

    python3 tests/fleet/userns.py CMD [ARG...]

The parent writes ``0 0 65536`` to the child's uid_map and gid_map (only real root may map
more than its own id); the child then becomes uid/gid 0 of the namespace and execs CMD.
Mounts made inside do not propagate back: a mount namespace owned by a new user namespace
receives its parent's shared mounts as slaves.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MAP = "0 0 65536\n"


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: userns.py CMD [ARG...]", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("userns.py: must run as real root (only root may map 65536 ids)", file=sys.stderr)
        return 125
    libc = ctypes.CDLL(None, use_errno=True)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
            print(f"unshare: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
            os._exit(125)
        os.write(ready_w, b"x")
        os.close(ready_w)
        if os.read(go_r, 1) != b"x":
            os._exit(125)
        os.setgid(0)
        os.setuid(0)
        try:
            os.execvp(argv[0], argv)
        except OSError as e:
            print(f"userns.py: {argv[0]}: {e.strerror}", file=sys.stderr)
            os._exit(127)
    os.close(ready_w)
    os.close(go_r)
    if os.read(ready_r, 1) != b"x":
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(MAP)
    os.write(go_w, b"x")
    os.close(go_w)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
