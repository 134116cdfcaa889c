"""The files of the system doctor judges (``--root DIR``, or ``/``), every path resolved
inside it.

An image's symlinks mean what they would mean in the booted image: each lookup goes
through :class:`binfmtctl.rootfs.Root` (``openat2(RESOLVE_IN_ROOT)``), so an absolute link
target starts at the image and ``..`` stops there; a link out of the image never shows
doctor the host's files. Nothing here raises for the image's state: a path that cannot be
looked up reads as absent.
"""

from __future__ import annotations

import os
import stat

from binfmtctl.errors import BinfmtctlError
from binfmtctl.rootfs import Root

_LOOKUP_ERRORS = (OSError, ValueError, BinfmtctlError)


class Image:
    """Existence, listing and reading of paths under one root. Paths are absolute as the
    booted image sees them (``/etc/binfmt.d``), or on disk under the root."""

    def __init__(self, root: Root) -> None:
        self.root = root

    def lexists(self, path: str) -> bool:
        """The path itself exists (a dangling link too), its directories resolved inside."""
        try:
            return self.root.lstat(path) is not None
        except _LOOKUP_ERRORS:
            return False

    def _stat(self, path: str) -> os.stat_result | None:
        try:
            fd = self.root.open(path, os.O_PATH | os.O_CLOEXEC)
        except _LOOKUP_ERRORS:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        """The path exists with its links followed inside the image."""
        return self._stat(path) is not None

    def isdir(self, path: str) -> bool:
        st = self._stat(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def islink(self, path: str) -> bool:
        try:
            st = self.root.lstat(path)
        except _LOOKUP_ERRORS:
            return False
        return st is not None and stat.S_ISLNK(st.st_mode)

    def readlink(self, path: str) -> str | None:
        try:
            return self.root.readlink(path)
        except _LOOKUP_ERRORS:
            return None

    def listdir(self, path: str) -> list[str] | None:
        """The names in a directory (links followed inside the image); None if it is no
        readable directory."""
        try:
            fd = self.root.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except _LOOKUP_ERRORS:
            return None
        try:
            return os.listdir(fd)
        except OSError:
            return None
        finally:
            os.close(fd)

    def read_text(self, path: str, limit: int = 1 << 20) -> str | None:
        """A regular file's text (never blocking on a FIFO); None if it cannot be read."""
        try:
            return self.root.read_bytes(path, limit).decode("utf-8", "replace")
        except _LOOKUP_ERRORS:
            return None

    def read_bytes(self, path: str) -> bytes | None:
        try:
            return self.root.read_bytes(path)
        except _LOOKUP_ERRORS:
            return None
