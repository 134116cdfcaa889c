"""Which user namespace this process runs in. Its own module, importing nothing: ``status``
asks it to word its note on processes it may not look at, and must not pay for
:mod:`binfmtctl.sandbox` (subprocess, tempfile, shutil) to do so."""

from __future__ import annotations


def in_initial_user_namespace() -> bool:
    """Is this process in the host's (initial) user namespace?"""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return True  # cannot tell: assume the host, the safe answer
