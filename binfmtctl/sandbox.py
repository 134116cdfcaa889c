"""A private binfmt_misc: a new user + mount namespace with its own instance.

Since Linux 6.7 every user namespace may mount its own binfmt_misc
(21ca59b365c0). Entries registered there are used by every exec inside that
namespace (and its children without their own mount) and are invisible to the
host. Any user can do it, no root needed, where unprivileged user namespaces
are allowed.

Two shapes:

* :func:`exec_in_sandbox` replaces the current process with
  ``unshare --user --map-root-user --mount`` running a command (the CLI's
  ``sandbox`` and ``run``): the namespace dies with the command.
* :class:`Sandbox` holds a namespace open (a sleeping holder process) so several
  commands can run in the same instance via ``nsenter``: tests, and a
  simulated reboot (tear down, start a fresh one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from binfmtctl import proc
from binfmtctl.errors import BinfmtctlError
from binfmtctl.record import dataclass
from binfmtctl.statedir import STATE_ENV as STATE_ENV  # set inside a sandbox
from binfmtctl.userns import in_initial_user_namespace as in_initial_user_namespace

DEFAULT_MOUNT = "/proc/sys/fs/binfmt_misc"
MIN_KERNEL = (6, 7)


class SandboxUnavailable(BinfmtctlError):
    """This host cannot give a private binfmt_misc; the message says why and what to do."""


def kernel_version(release: str | None = None) -> tuple[int, int]:
    rel = release if release is not None else os.uname().release
    parts = rel.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def explain_userns_failure(
    stderr: str, sysctls: Mapping[str, str], euid: int | None = None
) -> tuple[str, str]:
    """(reason, fix) for a failed ``unshare --user``, from its stderr and the sysctls
    that can forbid it. Pure, so each refusal path is unit-testable. ``euid``: the user
    who tried (default: this process), since two of the sysctls bind only non-root."""
    uid = os.geteuid() if euid is None else euid
    if sysctls.get("user.max_user_namespaces") == "0":
        return (
            "user namespaces are disabled (user.max_user_namespaces = 0)",
            "as root: sysctl -w user.max_user_namespaces=15000",
        )
    if sysctls.get("kernel.unprivileged_userns_clone") == "0" and uid != 0:
        return (
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)",
            "as root: sysctl -w kernel.unprivileged_userns_clone=1",
        )
    if sysctls.get("kernel.apparmor_restrict_unprivileged_userns") == "1" and uid != 0:
        return (
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)",
            "as root: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or add an AppArmor profile allowing userns for this program",
        )
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else "unknown error"
    return (
        f"cannot create a user namespace: {detail}",
        "check user namespace policy (sysctl user.max_user_namespaces, container seccomp profiles: Docker's default forbids unshare; run the container with --security-opt seccomp=unconfined or use the host)",
    )


def _read_sysctls() -> dict[str, str]:
    out = {}
    for name in (
        "user.max_user_namespaces",
        "kernel.unprivileged_userns_clone",
        "kernel.apparmor_restrict_unprivileged_userns",
    ):
        path = Path("/proc/sys") / name.replace(".", "/")
        try:
            out[name] = path.read_text().strip()
        except OSError:
            continue
    return out


def read_sysctls() -> dict[str, str]:
    """The sysctls that can forbid user namespaces (those this kernel has)."""
    return _read_sysctls()


#: how long the trial may take (a hung namespace setup must not hang doctor or run)
TRIAL_TIMEOUT = 30.0


@dataclass(frozen=True)
class Trial:
    """The outcome of ``unshare --user --map-root-user --mount -- mount -t binfmt_misc ...``
    (``returncode`` -1: it could not be started or did not answer; ``stderr`` says which)."""

    returncode: int
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def trial_argv(unshare: str) -> list[str]:
    return [
        unshare,
        "--user",
        "--map-root-user",
        "--mount",
        "--",
        "mount",
        "-t",
        "binfmt_misc",
        "binfmt_misc",
        DEFAULT_MOUNT,
    ]


def try_private_table(
    prefix: Sequence[str] = (), *, unshare: str = "unshare", timeout: float = TRIAL_TIMEOUT
) -> Trial:
    """Can a private binfmt_misc be made here? The one trial (``sandbox`` and ``run``
    and doctor ask it): a short-lived ``unshare`` that mounts one and exits. ``prefix``
    runs it as another user (``setpriv ...``)."""
    try:
        ran = proc.run([*prefix, *trial_argv(unshare)], timeout=timeout, cwd="/")
    except proc.TimedOut:
        return Trial(-1, f"unshare failed: no answer within {timeout:g}s")
    except OSError as e:
        return Trial(-1, f"unshare failed: {e.strerror}")
    return Trial(ran.returncode, ran.err)


def unavailable_reason(release: str | None = None) -> tuple[str, str] | None:
    """None if a private binfmt_misc can be made here; else (reason, fix)."""
    ver = kernel_version(release)
    if ver < MIN_KERNEL:
        return (
            f"Linux {ver[0]}.{ver[1]} has one global binfmt_misc shared by the host and every container; private instances need Linux 6.7 or later",
            "upgrade the kernel to 6.7+, or (as root, on a host you own) register on the global table: binfmtctl install",
        )
    unshare = shutil.which("unshare")
    if unshare is None:
        return ("the unshare command (util-linux) is not installed", "install util-linux")
    trial = try_private_table(unshare=unshare)
    if trial.returncode == -1:  # it could not be started, or did not answer
        return (trial.stderr, "check that util-linux's unshare works on this host")
    if trial.ok:
        return None
    if "unshare failed" in trial.stderr or "write failed" in trial.stderr:
        return explain_userns_failure(trial.stderr, _read_sysctls())
    return (
        f"cannot mount binfmt_misc inside a user namespace: {trial.stderr.strip() or 'exit ' + str(trial.returncode)}",
        "this kernel or its security policy does not allow a per-namespace binfmt_misc (needs Linux 6.7+ with binfmt_misc built in or loadable)",
    )


def require_available() -> None:
    why = unavailable_reason()
    if why is not None:
        raise SandboxUnavailable(why[0], fix=why[1])


def mount_private(path: str = DEFAULT_MOUNT) -> None:
    """Mount this user namespace's own binfmt_misc instance at ``path``.

    Always mounts, over whatever is there: a new mount namespace inherits a copy of the
    host's mount, and writing ``register`` through that copy would reach the host's table
    (as root it would even succeed). Refuses in the initial user namespace, where a mount
    *is* the host's table, and checks that a new instance (another device) is in place.
    """
    if in_initial_user_namespace():
        raise SandboxUnavailable(
            "refusing to mount binfmt_misc: this process is not inside a private user namespace",
            fix="use binfmtctl sandbox or binfmtctl run, which create one",
        )
    try:
        before = os.stat(path).st_dev
    except OSError as e:
        raise SandboxUnavailable(
            f"cannot use {path}: {e.strerror}", fix="is /proc mounted?"
        ) from None
    mounted = proc.run(["mount", "-t", "binfmt_misc", "binfmt_misc", path])
    if mounted.returncode != 0:
        raise SandboxUnavailable(
            f"cannot mount a private binfmt_misc at {path}: "
            + (mounted.err.strip() or f"exit status {mounted.returncode}"),
            fix="needs Linux 6.7+ and a user namespace allowed to mount it (binfmtctl run --dry-run says why not)",
        )
    if os.stat(path).st_dev == before:
        raise SandboxUnavailable(
            f"the binfmt_misc at {path} is still the inherited one, not a private instance",
            fix="needs Linux 6.7+ (per-user-namespace binfmt_misc)",
        )


def _unshare_prefix(map_args: Sequence[str] = ("--map-root-user",)) -> list[str]:
    return ["unshare", "--user", *map_args, "--mount", "--propagation", "private"]


def exec_in_sandbox(
    inner: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    check: bool = True,
    map_args: Sequence[str] = ("--map-root-user",),
) -> None:
    """Replace this process with ``inner`` running in a fresh private namespace.

    ``inner`` runs as (mapped) root of the new user namespace and must mount
    binfmt_misc itself (``binfmtctl _sandbox-init`` does). ``check=False``: the
    caller has already established that a private instance can be made.
    ``map_args``: unshare's id-mapping options (see :mod:`binfmtctl.idmap`).
    """
    if check:
        require_available()
    argv = [*_unshare_prefix(map_args), "--", *inner]
    os.execvpe(argv[0], argv, dict(env if env is not None else os.environ))


def self_command() -> list[str]:
    """How to run this binfmtctl again (same interpreter, same package)."""
    return [sys.executable, "-m", "binfmtctl"]


class Sandbox:
    """A held private namespace with binfmt_misc mounted at :data:`DEFAULT_MOUNT`.

    ``run()`` executes a command inside it (via ``nsenter``) with a private
    binfmtctl state directory, so ownership records stay inside the sandbox too.
    """

    def __init__(self, mount: str = DEFAULT_MOUNT) -> None:
        self.mount = mount
        self._holder: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.state_dir = ""

    def start(self) -> Sandbox:
        require_available()
        self._tmp = tempfile.TemporaryDirectory(prefix="binfmtctl-sandbox-")
        os.chmod(self._tmp.name, 0o755)
        self.state_dir = os.path.join(self._tmp.name, "state")
        script = (
            f'mount -t binfmt_misc binfmt_misc "{self.mount}" && echo ready && exec sleep infinity'
        )
        self._holder = subprocess.Popen(
            [*_unshare_prefix(), "--", "sh", "-c", script],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline()
        if line.strip() != b"ready":
            self.stop()
            raise SandboxUnavailable("the sandbox holder failed to mount binfmt_misc")
        return self

    @property
    def pid(self) -> int:
        if self._holder is None:
            raise RuntimeError("sandbox not started")
        return self._holder.pid

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env[STATE_ENV] = self.state_dir
        env["BINFMTCTL_MOUNT"] = self.mount
        # the namespace shares the host's files: keep persistence inside the sandbox too
        env["BINFMTCTL_CONFIG"] = os.path.join(self.state_dir, "zz-binfmtctl.conf")
        env["BINFMTCTL_CACHE_DIR"] = os.path.join(self.state_dir, "cache")  # boot plans
        env.update(extra or {})
        return env

    def command(self, argv: Sequence[str], cwd: str | None = None) -> list[str]:
        """argv wrapped to run inside the sandbox. Entering a mount namespace resets
        the working directory to its root, so nsenter is told to keep ``cwd``."""
        wd = os.path.abspath(cwd or os.getcwd())
        return [
            "nsenter",
            "-t",
            str(self.pid),
            "--user",
            "--mount",
            "--preserve-credentials",
            f"--wd={wd}",
            "--",
            *argv,
        ]

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float = 120,
    ) -> proc.Ran:
        return proc.run(
            self.command(argv, cwd), input=input, env=self.env(env), cwd=cwd, timeout=timeout
        )

    def popen(
        self,
        argv: Sequence[str],
        *,
        stdin: int | None = None,
        stdout: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command(argv, cwd), stdin=stdin, stdout=stdout, cwd=cwd, env=self.env(env)
        )

    def stop(self) -> None:
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait()
            if self._holder.stdout:
                self._holder.stdout.close()
            self._holder = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
