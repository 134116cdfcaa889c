"""Files under ``--root DIR``, opened so that nothing leaves DIR.

An offline image's symlinks mean what they would mean in the booted image: an absolute
link target starts at DIR, ``..`` stops at DIR. Every path is resolved by the kernel
relative to a descriptor of DIR with ``openat2(RESOLVE_IN_ROOT)`` (Linux >= 5.6); only
the last component is then created, replaced, linked or removed through its parent's
descriptor, never followed. Where ``openat2`` is missing, a component-by-component walk
with ``O_NOFOLLOW`` refuses any symlink in a directory part instead.

Reads open with ``O_NONBLOCK`` and accept regular files only (a FIFO named like a
config would otherwise hang the reader, and the boot unit with it).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errno_mod
import os
import platform
import stat
from collections.abc import Iterator
from pathlib import Path

from binfmtctl.errors import BinfmtctlError, UsageError

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "riscv64": 437, "s390x": 437, "ppc64le": 437}
#: a config or unit bigger than this is not one
MAX_FILE_BYTES = 16 << 20


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class NotRegularFile(BinfmtctlError):
    pass


_libc: ctypes.CDLL | None = None


def _syscall() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """The openat2(2) system call; OSError as os.open raises it."""
    nr = _SYS_OPENAT2.get(platform.machine())
    if nr is None:
        raise OSError(errno_mod.ENOSYS, os.strerror(errno_mod.ENOSYS))
    how = OpenHow(flags | os.O_CLOEXEC, mode if flags & (os.O_CREAT | os.O_TMPFILE) else 0, resolve)
    libc = _syscall()
    fd = int(
        libc.syscall(
            ctypes.c_long(nr),
            ctypes.c_int(dirfd),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
    )
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return fd


def _walk_open(dirfd: int, path: str, flags: int, mode: int = 0) -> int:
    """Fallback without openat2: every directory part opened with O_NOFOLLOW (a symlink
    there is refused with ELOOP), ``..`` refused; the last part opened with ``flags``."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OSError(errno_mod.EXDEV, "'..' in a path under --root", path)
    cur = os.dup(dirfd)
    try:
        for p in parts[:-1]:
            nxt = os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            os.close(cur)
            cur = nxt
        return os.open(parts[-1] if parts else ".", flags | os.O_CLOEXEC, mode, dir_fd=cur)
    finally:
        os.close(cur)


class Root:
    """A root directory (an image, or ``/``) and the files under it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = Path(os.path.abspath(root))
        try:
            self.fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise UsageError(
                f"--root {self.path} does not exist",
                fix="give the directory where the image is mounted (it is never created)",
            ) from None
        except NotADirectoryError:
            raise UsageError(f"--root {self.path} is not a directory") from None
        except OSError as e:
            raise UsageError(f"cannot open --root {self.path}: {e.strerror}") from None
        self._openat2 = True

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Root:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- paths ----------------------------------------------------------------------------------
    def rel(self, path: str | os.PathLike[str]) -> str:
        """``path`` (on disk, under the root; or as the image sees it) relative to the root.
        A relative ``path`` is already relative to the root."""
        if not os.path.isabs(path):
            return os.fspath(path)
        p = Path(os.path.abspath(path))
        if p == self.path:
            return "."
        if self.path in p.parents:
            return str(p.relative_to(self.path))
        return str(p.relative_to("/")) or "."

    def _open(self, rel: str, flags: int, mode: int = 0) -> int:
        if self._openat2:
            try:
                return openat2(self.fd, rel, flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
            except OSError as e:
                if e.errno not in (errno_mod.ENOSYS, errno_mod.EPERM):
                    raise
                self._openat2 = False  # no openat2 (or seccomp forbids it): walk
        return _walk_open(self.fd, rel, flags, mode)

    def open(self, path: str | os.PathLike[str], flags: int, mode: int = 0) -> int:
        """A descriptor of ``path`` resolved inside the root (links followed inside it)."""
        return self._open(self.rel(path), flags, mode)

    def _split(self, path: str | os.PathLike[str]) -> tuple[str, str]:
        rel = self.rel(path)
        parent, _, name = rel.rpartition("/")
        if name in ("", ".", ".."):
            raise UsageError(f"{path}: not a file name under --root {self.path}")
        return parent or ".", name

    @contextlib.contextmanager
    def parent(
        self, path: str | os.PathLike[str], *, create: bool = False
    ) -> Iterator[tuple[int, str]]:
        """(descriptor of the parent directory, last component), the parent resolved inside
        the root (created, mode 0755, with ``create``)."""
        parent, name = self._split(path)
        if create:
            self.makedirs(parent)
        fd = self._open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            yield fd, name
        finally:
            os.close(fd)

    def makedirs(self, rel: str, mode: int = 0o755) -> None:
        """``mkdir -p`` as the booted image would do it: links (dangling ones too) are
        followed inside the root, ``..`` stops at it, missing directories are created."""
        todo = [p for p in rel.split("/") if p not in ("", ".")]
        done: list[str] = []  # the canonical path so far: no links, no ..
        hops = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            with self.parent("/".join([*done, part])) as (dfd, name):
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, mode, dir_fd=dfd)
                    done.append(part)
                    continue
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > 40:
                        raise OSError(errno_mod.ELOOP, os.strerror(errno_mod.ELOOP), rel)
                    target = os.readlink(name, dir_fd=dfd)
                    if target.startswith("/"):
                        done = []
                    todo[:0] = [p for p in target.split("/") if p not in ("", ".")]
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errno_mod.ENOTDIR, os.strerror(errno_mod.ENOTDIR), rel)
                done.append(part)

    # -- reading --------------------------------------------------------------------------------
    def read_bytes(self, path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
        """A regular file's bytes (FileNotFoundError if missing; NotRegularFile for a FIFO,
        device, socket or directory; never blocks)."""
        fd = self.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NotRegularFile(
                    f"{path} is not a regular file ({_kind(st.st_mode)}): not reading it",
                    fix=f"replace it with a regular file, or remove it (rm {path})",
                )
            chunks = []
            size = 0
            while size <= limit:
                b = os.read(fd, 1 << 16)
                if not b:
                    break
                chunks.append(b)
                size += len(b)
            if size > limit:
                raise NotRegularFile(f"{path} is larger than {limit} bytes: not a config or unit")
            return b"".join(chunks)
        finally:
            os.close(fd)

    def lstat(self, path: str | os.PathLike[str]) -> os.stat_result | None:
        try:
            with self.parent(path) as (dfd, name):
                return os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def readlink(self, path: str | os.PathLike[str]) -> str | None:
        try:
            with self.parent(path) as (dfd, name):
                return os.readlink(name, dir_fd=dfd)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            if e.errno == errno_mod.EINVAL:  # not a symlink
                return None
            raise

    def is_file(self, path: str | os.PathLike[str]) -> bool:
        """A regular file, following links inside the root."""
        try:
            fd = self.open(path, os.O_PATH)
        except OSError:
            return False
        try:
            return stat.S_ISREG(os.fstat(fd).st_mode)
        finally:
            os.close(fd)

    def executable(self, path: str | os.PathLike[str]) -> bool:
        try:
            fd = self.open(path, os.O_PATH)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)
        finally:
            os.close(fd)

    # -- writing --------------------------------------------------------------------------------
    def write_atomic(self, path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
        """Replace ``path`` (the link itself if it is one) with a new file: a temporary file
        made with O_EXCL|O_NOFOLLOW in the parent, fsync'd, renamed over; root-owned when
        run as root, ``mode`` exactly."""
        with self.parent(path, create=True) as (dfd, name):
            tmp = f".{name}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dfd)
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                mode,
                dir_fd=dfd,
            )
            try:
                try:
                    write_whole(fd, data, mode)
                finally:
                    os.close(fd)
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)
                raise
            os.fsync(dfd)

    def symlink(self, target: str, path: str | os.PathLike[str]) -> None:
        """Make ``path`` a symlink to ``target`` (replacing what is there, never through it)."""
        with self.parent(path, create=True) as (dfd, name):
            st = None
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if st is not None:
                if stat.S_ISDIR(st.st_mode):
                    raise BinfmtctlError(f"{path} is a directory: not replacing it")
                os.unlink(name, dir_fd=dfd)
            os.symlink(target, name, dir_fd=dfd)
            if os.geteuid() == 0:
                os.chown(name, 0, 0, dir_fd=dfd, follow_symlinks=False)

    def unlink(self, path: str | os.PathLike[str]) -> bool:
        """Remove ``path`` itself (a link is removed, not its target); False if absent."""
        try:
            with self.parent(path) as (dfd, name):
                os.unlink(name, dir_fd=dfd)
                return True
        except (FileNotFoundError, NotADirectoryError):
            return False


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> bytes:
    """A regular file's bytes, never blocking on a FIFO (any path, no root)."""
    with Root("/") as r:
        return r.read_bytes(os.path.abspath(path), limit)


def write_whole(fd: int, data: bytes, mode: int) -> None:
    """What a file needs before it is renamed over its target: all of ``data`` written,
    ``mode`` set whatever the umask (owned by root when root writes it), and fsync'd."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fchmod(fd, mode)
    if os.geteuid() == 0:
        os.fchown(fd, 0, 0)
    os.fsync(fd)
