"""``install`` / ``uninstall`` / ``test`` for QEMU targets: the decisions, kept pure.

- :func:`resolve_targets`: names and aliases (and ``all``) to table targets, by QEMU's family rule,
  saying what was skipped and why; targets the host runs natively are skipped with a note
  (``--force`` registers them).
- :func:`default_flags` / :func:`choose_flags`: the flag policy (F on >= 4.8, P only where the
  interpreter expects it, C/O only on request), with notes that explain each choice.
- :func:`plan_targets` / :func:`build_entries`: one ``qemu-<target>`` entry per target with the
  table's magic/mask, each validated for the kernel profile before anything is written.
- :func:`uninstall_selection`: what ``uninstall`` removes (binfmtctl's own QEMU entries, or what
  is named), never other tools' entries unless named.
- :func:`run_probes`: the edge: write each target's probe and exec it through the live table.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import fnmatch
import os
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence

from binfmtctl import proc, table
from binfmtctl.entry import Entry, normalize_flags, render_register
from binfmtctl.errors import UsageError
from binfmtctl.interpreters import InterpreterInfo, missing_message
from binfmtctl.plan import Action
from binfmtctl.record import dataclass, field
from binfmtctl.rules import KernelProfile, validate
from binfmtctl.table import Target
from binfmtctl.wording import article

ALL = "all"
PROBE_TIMEOUT = 20.0


# -- targets ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Skipped:
    """A target left out, and why. ``refused``: the user named it and it was denied (an error)."""

    name: str
    reason: str
    refused: bool = False
    fix: str = ""
    native: bool = False  # left out because the host runs it natively

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "reason": self.reason,
            "refused": self.refused,
            "fix": self.fix,
            "native": self.native,
        }


def _family_members(family: str) -> list[str]:
    return [t.name for t in table.targets() if t.family == family]


def host_family_reason(host: Target) -> str:
    members = ", ".join(_family_members(host.family))
    return (
        f"the host ({host.name}) runs the {host.family} family natively ({members}); "
        "registering it would hijack native binaries"
    )


def split_target_list(args: Iterable[str]) -> list[str]:
    """The target tokens of ``args``, in order: each argument may be a comma list, as
    ``docker buildx build --platform`` and tonistiigi/binfmt's ``--install`` take them
    (``linux/arm,linux/arm64,linux/amd64``). Blanks around and between commas are dropped."""
    return [tok.strip() for arg in args for tok in arg.split(",") if tok.strip()]


def is_pattern(token: str) -> bool:
    """Is ``token`` a glob (``qemu-*``, ``mips*``, ``linux/arm*``) rather than a name?"""
    return any(c in token for c in "*?[")


def match_pattern(pattern: str, candidates: Iterable[Target]) -> list[Target]:
    """The targets a glob names, in table order: fnmatch, case-insensitive, over each target's
    QEMU name, its aliases and its entry name ``qemu-NAME`` (so ``qemu-*`` is every target,
    as in tonistiigi/binfmt)."""
    pat = pattern.strip().lower()
    return [
        t
        for t in candidates
        if any(fnmatch.fnmatchcase(n.lower(), pat) for n in (t.name, f"qemu-{t.name}", *t.aliases))
    ]


def native_reason(host: Target, t: Target) -> str:
    """Why a named target of the host's own family is left out."""
    what = "its own CPU" if t.name == host.name else f"the {host.family} family natively"
    return (
        f"the host ({host.name}) runs {t.name} binaries natively ({what}): no emulation needed; "
        "an entry for it would hijack the host's own binaries"
    )


def resolve_targets(
    names: Sequence[str],
    uname_m: str,
    ignore_family: bool = False,
    *,
    force: bool = False,
    available: Callable[[Target], bool] | None = None,
    skip_native: bool = False,
) -> tuple[list[Target], list[Skipped]]:
    """Targets to install for ``names`` (QEMU names, aliases, comma lists of them, globs, or
    ``all``), deduplicated, in order.

    ``all``: every target whose interpreter is present (``available``; default: all) minus the
    host's family (``ignore_family``: minus the exact host CPU only), each skip reported. A glob
    (:func:`match_pattern`) is ``all`` narrowed to the targets it matches; one that matches no
    target is a usage error. A named target of the host's family is refused
    (``Skipped.refused``) unless ``force``; with ``skip_native`` (install) it is skipped with
    a note instead, so a buildx platform list that includes the host installs the rest.
    Unknown names raise :class:`~binfmtctl.table.UnknownTargetError` (a usage error).
    """
    host = table.host_target(uname_m)

    def native(t: Target) -> bool:
        return t.name == host.name if ignore_family else t.family == host.family

    chosen: dict[str, Target] = {}
    skipped: list[Skipped] = []

    def add_group(group: Sequence[Target]) -> None:
        own = [t.name for t in group if native(t) and t.name not in chosen]
        if own:
            skipped.append(Skipped(", ".join(own), host_family_reason(host), native=True))
        absent: list[str] = []
        for t in group:
            if native(t) or t.name in chosen:
                continue
            if available is not None and not available(t):
                absent.append(t.name)
                continue
            chosen[t.name] = t
        if absent:
            skipped.append(Skipped(", ".join(absent), "no QEMU interpreter installed for these"))

    for raw in split_target_list(names):
        if raw.lower() == ALL:
            add_group(table.targets())
            continue
        if is_pattern(raw):
            group = match_pattern(raw, table.targets())
            if not group:
                raise UsageError(
                    f"{raw!r} matches no QEMU target",
                    fix="QEMU names and aliases: aarch64 arm64 linux/arm/v7 riscv64 s390x ... "
                    "(binfmtctl install --help)",
                )
            add_group(group)
            continue
        t = table.get_target(raw)
        if t.name in chosen:
            continue
        if native(t) and not force:
            if skip_native:
                if not any(s.name == t.name for s in skipped):
                    skipped.append(
                        Skipped(
                            t.name,
                            native_reason(host, t),
                            fix="nothing to do; --force registers it anyway",
                            native=True,
                        )
                    )
                continue
            skipped.append(
                Skipped(
                    t.name,
                    host_family_reason(host),
                    refused=True,
                    fix=f"drop {raw}; or pass --force if you really mean to run the host's own "
                    "binaries through QEMU",
                )
            )
            continue
        chosen[t.name] = t
    return list(chosen.values()), skipped


# -- flags ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Note:
    """Why a flag was (not) chosen. ``error``: the target cannot be installed this way."""

    level: str  # "info" | "warning" | "error"
    text: str

    def __str__(self) -> str:
        return f"{self.level}: {self.text}"

    def to_json(self) -> dict[str, str]:
        return {"level": self.level, "text": self.text}


NOTE_F = "F: the kernel opens the interpreter once, at registration, so emulation also works inside containers and chroots that do not contain QEMU"
NOTE_NO_F = "Linux {kernel} has no F flag (added in 4.8): F dropped, so the kernel opens the interpreter path at every exec and it must exist inside containers and chroots too"
NOTE_DYNAMIC_F = "the interpreter is dynamically linked (loader {loader}): F pins the binary but its loader and shared libraries are still loaded from inside each container or chroot, where they are usually missing, so foreign binaries fail there; install a static build (qemu-user-static)"
NOTE_DYNAMIC = "the interpreter is dynamically linked (loader {loader}): it only works where its loader and libraries exist; install a static build (qemu-user-static)"
NOTE_NOT_ELF = (
    "the interpreter is not an ELF binary binfmtctl could read; cannot tell whether it is static"
)
NOTE_P = "P: this interpreter is Debian's -binfmt-P name, which requires P (without it QEMU refuses to run: 'has to be run using kernel binfmt-misc subsystem')"
NOTE_P_MISSING = "this interpreter is Debian's -binfmt-P name, which requires P; without it every foreign program fails"
NOTE_P_NO_AUXV = "P with an interpreter that does not expect it: QEMU learns of P from AT_FLAGS only since Linux 5.12; on Linux {kernel} programs see a shifted argv"
NOTE_C = "C (implies O): setuid/setgid foreign binaries run with their owner's privileges inside QEMU (sudo in a foreign chroot); QEMU is not hardened for that, so a QEMU bug becomes a privilege escalation"
NOTE_O = "O: the kernel passes the binary as an open file descriptor (runs execute-only binaries)"


def default_flags(
    profile: KernelProfile,
    interp: InterpreterInfo,
    credentials: bool = False,
    open_binary: bool = False,
) -> tuple[str, list[Note]]:
    """The flags binfmtctl chooses for this interpreter on this kernel, and why."""
    flags = ""
    notes: list[Note] = []
    loader = interp.loader or "unknown"
    if profile.at_least(4, 8):
        flags += "F"
        notes.append(Note("info", NOTE_F))
        if interp.static is False:
            notes.append(Note("warning", NOTE_DYNAMIC_F.format(loader=loader)))
    else:
        notes.append(Note("warning", NOTE_NO_F.format(kernel=profile.label)))
        if interp.static is False:
            notes.append(Note("warning", NOTE_DYNAMIC.format(loader=loader)))
    if interp.static is None and interp.found:
        notes.append(Note("warning", NOTE_NOT_ELF))
    if interp.expects_p:
        flags += "P"
        notes.append(Note("info", NOTE_P))
    if credentials:
        flags += "C"
        notes.append(Note("warning", NOTE_C))
    elif open_binary:
        flags += "O"
        notes.append(Note("info", NOTE_O))
    return normalize_flags(flags), notes


def check_flags(text: str, profile: KernelProfile) -> str:
    """``--flags`` text -> normalised flags; :class:`UsageError` if the kernel does not know one."""
    cleaned = text.strip().upper()
    try:
        flags = normalize_flags(cleaned)
    except ValueError as e:
        raise UsageError(f"--flags {text!r}: {e}") from None
    unknown = [f for f in flags if f not in profile.known_flags]
    if unknown:
        raise UsageError(
            f"--flags {text!r}: Linux {profile.label} does not know flag {''.join(unknown)}"
            + (" (F was added in 4.8)" if "F" in unknown else ""),
            fix=f"flags Linux {profile.label} knows: {profile.known_flags}",
        )
    return flags


def choose_flags(
    profile: KernelProfile,
    interp: InterpreterInfo,
    explicit: str | None = None,
    *,
    credentials: bool = False,
    open_binary: bool = False,
) -> tuple[str, list[Note]]:
    """:func:`default_flags`, or the explicit ``--flags`` (validated; ``--credentials`` adds C)."""
    if explicit is None:
        return default_flags(profile, interp, credentials, open_binary)
    flags = check_flags(explicit, profile)
    flags = normalize_flags(flags + ("C" if credentials else "") + ("O" if open_binary else ""))
    notes: list[Note] = []
    loader = interp.loader or "unknown"
    if "F" in flags:
        notes.append(Note("info", NOTE_F))
        if interp.static is False:
            notes.append(Note("warning", NOTE_DYNAMIC_F.format(loader=loader)))
    elif interp.static is False:
        notes.append(Note("warning", NOTE_DYNAMIC.format(loader=loader)))
    if interp.expects_p and "P" not in flags:
        notes.append(Note("error", NOTE_P_MISSING))
    elif "P" in flags and interp.expects_p:
        notes.append(Note("info", NOTE_P))
    elif "P" in flags and not profile.preserve_argv0_auxv:
        notes.append(Note("warning", NOTE_P_NO_AUXV.format(kernel=profile.label)))
    if "C" in flags:
        notes.append(Note("warning", NOTE_C))
    elif "O" in flags:
        notes.append(Note("info", NOTE_O))
    return flags, notes


# -- entries ---------------------------------------------------------------------------------------
@dataclass
class TargetPlan:
    """One target of an install: its interpreter, entry and flags, or why it cannot be installed.

    ``action`` is filled in from the live table (add / replace / keep / conflict);
    ``error``/``fix`` say why the target fails (then ``entry`` may still show what was meant).
    """

    target: Target
    interpreter: InterpreterInfo
    entry: Entry | None = None
    notes: list[Note] = field(default_factory=list)
    error: str | None = None
    fix: str | None = None
    action: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.entry is not None

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target.name,
            "entry": self.entry.name if self.entry else f"qemu-{self.target.name}",
            "interpreter": self.interpreter.path,
            "flags": self.entry.flags if self.entry else None,
            "register": os.fsdecode(render_register(self.entry)) if self.entry else None,
            "action": self.action,
            "ok": self.ok,
            "error": self.error,
            "fix": self.fix,
            "notes": [n.to_json() for n in self.notes],
            "interpreter_info": self.interpreter.to_json(),
        }


def build_entry(target: Target, interpreter: str, flags: str) -> Entry:
    """``qemu-<target>`` with the table's magic and mask."""
    return target.entry(interpreter, flags)


def build_entries(plans: Iterable[TargetPlan]) -> list[Entry]:
    """The entries of the targets that can be installed."""
    return [p.entry for p in plans if p.ok and p.entry is not None]


def plan_targets(
    targets: Sequence[Target],
    interpreters: Mapping[str, InterpreterInfo],
    profile: KernelProfile,
    *,
    flags: str | None = None,
    credentials: bool = False,
    open_binary: bool = False,
    exec_check: Callable[[str], str | None] | None = None,
) -> list[TargetPlan]:
    """Choose flags and build and validate one entry per target (pure; facts passed in).

    ``--flags`` that the kernel does not know raise :class:`UsageError` before anything else.
    """
    if flags is not None:
        check_flags(flags, profile)
    plans: list[TargetPlan] = []
    for t in targets:
        info = interpreters[t.name]
        plan = TargetPlan(t, info)
        plans.append(plan)
        if not info.found or info.path is None:
            plan.error, plan.fix = missing_message(info)
            continue
        chosen, notes = choose_flags(
            profile, info, flags, credentials=credentials, open_binary=open_binary
        )
        plan.notes = notes
        plan.entry = build_entry(t, info.path, chosen)
        errors = [n for n in notes if n.level == "error"]
        if errors:
            plan.error = errors[0].text
            plan.fix = "add P to --flags, or choose another interpreter with --qemu-path"
            continue
        verdict = validate(render_register(plan.entry) + b"\n", profile, exec_check=exec_check)
        problems = [p for p in verdict.problems if p.is_error]
        if problems:
            p = problems[0]
            plan.error = f"the kernel would refuse it ({p.errno}): {p.field}: {p.message}"
            plan.fix = p.fix
    return plans


def attach_actions(plans: Sequence[TargetPlan], actions: Iterable[Action]) -> None:
    """Record each planned action on its target; a conflict fails that target."""
    by_name = {a.entry.name: a for a in actions}
    for p in plans:
        if not p.ok or p.entry is None:
            continue
        a = by_name.get(p.entry.name)
        if a is None:
            continue
        p.action = a.kind
        if a.kind == "conflict":
            p.error = f"an entry named {p.entry.name} is already registered with different content"
            p.fix = (
                f"binfmtctl install --replace {p.target.name}  (or binfmtctl remove {p.entry.name})"
            )


def group_notes(plans: Iterable[TargetPlan]) -> list[tuple[Note, list[str]]]:
    """Each distinct note once, with the targets it applies to (for a readable report)."""
    grouped: dict[Note, list[str]] = {}
    for p in plans:
        if p.entry is None:
            continue
        for n in p.notes:
            grouped.setdefault(n, []).append(p.target.name)
    return list(grouped.items())


# -- uninstall ---------------------------------------------------------------------------------------
def _qemu_target(entry: Entry) -> str | None:
    found = table.qemu_target(entry)
    return None if found is None else found.target


def is_qemu_entry(entry: Entry) -> bool:
    return entry.name.startswith("qemu-") or _qemu_target(entry) is not None


def uninstall_selection(
    names: Sequence[str], live: Sequence[Entry], owned: Collection[str]
) -> tuple[list[str], list[Note]]:
    """Entry names ``uninstall NAMES`` removes, in order, and notes on what it left alone.

    ``all``: every QEMU entry binfmtctl registered (and still owns). A target name or alias:
    ``qemu-<target>`` and any binfmtctl-owned entry for that target. An entry name: that entry,
    whoever registered it (naming it is the explicit consent). Anything else is a usage error.
    """
    by_name = {e.name: e for e in live}
    out: dict[str, None] = {}
    notes: list[Note] = []
    for raw in split_target_list(names):
        if raw in ("status", "register"):
            raise UsageError(
                f"{raw!r} is a control file, not an entry; binfmtctl never flushes the whole table"
            )
        if raw.strip().lower() == ALL:
            for e in live:
                if e.name in owned and is_qemu_entry(e):
                    out.setdefault(e.name, None)
                elif is_qemu_entry(e):
                    notes.append(
                        Note(
                            "info",
                            f"left {e.name}: binfmtctl did not register it (name it to remove it)",
                        )
                    )
            continue
        if is_pattern(raw):
            _select_pattern(raw, live, owned, out, notes)
            continue
        if raw in by_name:
            if raw not in owned:
                notes.append(
                    Note("info", f"{raw}: not registered by binfmtctl; removing it as named")
                )
            out.setdefault(raw, None)
            continue
        try:
            t = table.get_target(raw)
        except table.UnknownTargetError as e:
            hint = (
                "; did you mean " + " or ".join(repr(s) for s in e.suggestions) + "?"
                if e.suggestions
                else ""
            )
            raise UsageError(
                f"{raw!r} is neither a live entry nor a QEMU target{hint}",
                fix="binfmtctl status lists the live entries",
            ) from None
        hits = [
            e.name
            for e in live
            if e.name == f"qemu-{t.name}" or (e.name in owned and _qemu_target(e) == t.name)
        ]
        if not hits:
            notes.append(Note("info", f"qemu-{t.name} is not registered; nothing to remove"))
        for h in hits:
            out.setdefault(h, None)
    return list(out), notes


def _select_pattern(
    pattern: str,
    live: Sequence[Entry],
    owned: Collection[str],
    out: dict[str, None],
    notes: list[Note],
) -> None:
    """``uninstall 'qemu-*'`` (as tonistiigi/binfmt's ``--uninstall``): the live QEMU entries
    (and binfmtctl's own) whose name or QEMU target the glob matches. Other tools' non-QEMU
    entries (WSLInterop, python, jar) are never taken by a glob: name them exactly."""
    pat = pattern.strip().lower()
    hit = False
    for e in live:
        target = _qemu_target(e)
        by_target = target is not None and bool(match_pattern(pat, [table.get_target(target)]))
        if not (fnmatch.fnmatchcase(e.name.lower(), pat) or by_target):
            continue
        hit = True
        if target is None and e.name not in owned:
            notes.append(
                Note("info", f"left {e.name}: not a QEMU entry; name it exactly to remove it")
            )
            continue
        if e.name not in owned:
            notes.append(
                Note("info", f"{e.name}: not registered by binfmtctl; removing it as matched")
            )
        out.setdefault(e.name, None)
    if not hit:
        notes.append(Note("info", f"no live entry matches {pattern!r}; nothing to remove"))


# -- probes (edge) ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeResult:
    target: str
    ok: bool
    handler: str | None
    output: str
    error: str | None
    native: bool = False  # no entry matched: the host ran it by itself

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "ok": self.ok,
            "handler": self.handler,
            "output": self.output,
            "error": self.error,
        }


def select_test_targets(args: Sequence[str], live: Sequence[str]) -> list[str]:
    """Targets ``test ARGS`` probes, in order, deduplicated: names, aliases and comma lists as
    given; a glob stands for the live QEMU targets it matches (``test 'qemu-*'`` tests what is
    installed); no argument: every live QEMU target (``live``, in table order)."""
    tokens = split_target_list(args)
    if not tokens:
        return list(live)
    installed = [table.get_target(n) for n in live]
    out: dict[str, None] = {}
    for tok in tokens:
        if is_pattern(tok):
            out.update(dict.fromkeys(t.name for t in match_pattern(tok, installed)))
        else:
            out.setdefault(table.get_target(tok).name, None)
    return list(out)


def live_qemu_targets(entries: Iterable[Entry]) -> list[str]:
    """Targets of the enabled live QEMU entries, in table order."""
    found = {t for e in entries if e.enabled and (t := _qemu_target(e)) is not None}
    return [t.name for t in table.targets() if t.name in found]


def _exec_ok_dir(path: str) -> bool:
    try:
        return os.access(path, os.W_OK | os.X_OK) and not (os.statvfs(path).f_flag & os.ST_NOEXEC)
    except OSError:
        return False


@contextlib.contextmanager
def probe_dir() -> Iterator[str]:
    """A private temporary directory (mode 0755) on a filesystem that allows exec."""
    choices = [
        os.environ.get("BINFMTCTL_PROBE_DIR") or "",
        tempfile.gettempdir(),
        "/var/tmp",
        "/dev/shm",
        "/run",
    ]
    base = next((c for c in choices if c and _exec_ok_dir(c)), None)
    with tempfile.TemporaryDirectory(prefix="binfmtctl-probe-", dir=base) as d:
        os.chmod(d, 0o755)
        yield d


def _explain_exec_error(
    e: OSError, handler: Entry | None, target: str, status_enabled: bool = True
) -> str:
    name = errno_mod.errorcode.get(e.errno or 0, str(e.errno))
    if e.errno == errno_mod.ENOEXEC and not status_enabled:
        return "exec format error (ENOEXEC): binfmt_misc is disabled globally (its status file says disabled)"
    if e.errno == errno_mod.ENOEXEC:
        return f"exec format error (ENOEXEC): no enabled binfmt_misc entry matches {article(target)} binary"
    if handler is not None and e.errno == errno_mod.ENOENT:
        return f"the kernel cannot open the interpreter {handler.interpreter} (ENOENT): it is gone, or missing inside this root"
    if e.errno == errno_mod.EACCES:
        return "permission denied (EACCES): the probe directory is mounted noexec, or the interpreter is not executable"
    return f"exec failed: {e.strerror} ({name})"


def run_probe(
    target: str,
    directory: str,
    entries: Sequence[Entry],
    status_enabled: bool = True,
    timeout: float = PROBE_TIMEOUT,
) -> ProbeResult:
    """Write ``target``'s probe into ``directory`` and exec it (the kernel picks the handler)."""
    from binfmtctl import probe
    from binfmtctl.match import match

    try:
        path = probe.write_probe(target, directory)
    except probe.UnknownTargetError as e:
        return ProbeResult(target, False, None, "", str(e))
    except OSError as e:
        return ProbeResult(target, False, None, "", f"cannot write the probe: {e.strerror}")
    header = probe.build_probe(target)[:256]
    result = match(header, entries, str(path), status_enabled)
    handler = result.handler
    hname = handler.name if handler is not None else None
    try:
        ran = proc.run([str(path)], timeout=timeout, cwd=directory)
    except proc.TimedOut:
        return ProbeResult(target, False, hname, "", f"no answer within {timeout:g}s")
    except OSError as e:
        return ProbeResult(
            target, False, hname, "", _explain_exec_error(e, handler, target, status_enabled)
        )
    output = ran.stdout.decode("utf-8", "replace")
    want = probe.marker(target)
    if ran.returncode == 0 and ran.stdout == want:
        return ProbeResult(target, True, hname, output, None, native=handler is None)
    stderr = ran.stderr.decode("utf-8", "replace").strip()
    why = (
        f"exit status {ran.returncode}"
        if ran.returncode >= 0
        else f"killed by signal {-ran.returncode}"
    )
    if ran.stdout != want:
        why += f", printed {output[:80]!r} instead of {want.decode()!r}"
    if stderr:
        why += f"; stderr: {stderr.splitlines()[0][:200]}"
    return ProbeResult(target, False, hname, output, why)


def run_probes(
    targets: Sequence[str], entries: Sequence[Entry], status_enabled: bool = True
) -> list[ProbeResult]:
    """:func:`run_probe` for each target, in one temporary directory."""
    try:
        with probe_dir() as d:
            return [run_probe(t, d, entries, status_enabled) for t in targets]
    except OSError as e:
        return [
            ProbeResult(t, False, None, "", f"cannot create a probe directory: {e.strerror}")
            for t in targets
        ]


def probe_matrix(results: Sequence[ProbeResult]) -> list[str]:
    """The human pass/fail matrix."""
    lines = [f"  {'TARGET':<14} {'RESULT':<6} {'HANDLER':<22} DETAIL"]
    for r in results:
        detail = r.output.strip() if r.ok else (r.error or "")
        handler = r.handler or ("(native)" if r.native else "-")
        lines.append(f"  {r.target:<14} {'ok' if r.ok else 'FAIL':<6} {handler:<22} {detail}")
    return lines
