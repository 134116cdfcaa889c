"""Each attack of issue 13 (items 1, 2, 6), performed for real: the attacker is uid 65534
on this host, the victim is root of a private binfmt_misc (a sandbox), and binfmtctl must
refuse, warn, or report. The host's table is never touched (conftest's guard)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from binfmtctl import persist, probe, table
from binfmtctl.entry import Entry, parse_register, render_register_str
from binfmtctl.kernelprofile import KernelProfile
from binfmtctl.sandbox import Sandbox
from tests.conftest import NOBODY, User, run_cli, shared_tmpdir, snapshot

#: parsing takes a kernel profile; these tests parse for the running one
HOST = KernelProfile.current_default()

QEMU = "/usr/bin/qemu-aarch64-static"
AARCH64 = table.get_target("aarch64")
UNTRUSTED = "a non-root user controls the interpreter"


def t2(interpreter: str | Path, flags: str = "OC", name: str = "t2") -> str:
    return render_register_str(AARCH64.entry(str(interpreter), flags, name))


def clean(p: object) -> None:
    out = getattr(p, "stdout", "") + getattr(p, "stderr", "")
    assert "Traceback" not in out and "internal error" not in out, out


def doctor_findings(box: Sandbox, root: Path) -> list[dict[str, str]]:
    p = run_cli(box, "doctor", "--json", "--root", str(root), env={"BINFMTCTL_CONFIG": ""})
    clean(p)
    findings: list[dict[str, str]] = json.loads(p.stdout)["findings"]
    return findings


def finding(found: list[dict[str, str]], code: str, entry: str) -> dict[str, str]:
    hits = [f for f in found if f["code"] == code and f["entry"] == entry]
    assert hits, (code, entry, [(f["code"], f["entry"]) for f in found])
    return hits[0]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def nobody_dir(user: User) -> Path:
    """A directory uid 65534 owns (traversable, so the sandbox's root can look inside)."""
    d = user.workdir()
    d.chmod(0o755)
    return d


@pytest.fixture
def sticky_dir() -> Iterator[Path]:
    """A root-owned sticky, world-writable directory, as /tmp is."""
    with shared_tmpdir("binfmtctl-sticky-", 0o1777) as d:
        yield d


def as_nobody(user: User, script: str) -> None:
    p = user.run(["sh", "-c", script])
    assert p.returncode == 0, p.stderr


# -- item 1: a symlink around the C/O check ----------------------------------------------------------
def test_symlink_repoint_attack_is_refused_and_is_real(
    sandbox: Sandbox, user: User, nobody_dir: Path, tmp_path: Path, root: Path
) -> None:
    q = nobody_dir / "q"
    as_nobody(user, f"ln -s {QEMU} {q}")
    assert os.lstat(q).st_uid == NOBODY and os.path.realpath(q) == QEMU  # resolves to root's QEMU

    refused = run_cli(sandbox, "register", t2(q))
    clean(refused)
    assert refused.returncode == 1
    assert f"{nobody_dir} is owned by uid {NOBODY}" in refused.stderr
    assert "fix:" in refused.stderr and "--force" in refused.stderr
    assert snapshot(sandbox) == []

    # what the refusal prevents: registered anyway, the owner repoints q at their program
    forced = run_cli(sandbox, "register", "--force", t2(q))
    clean(forced)
    assert forced.returncode == 0 and [n for n, _ in snapshot(sandbox)] == ["t2"]
    prog = probe.write_probe("aarch64", tmp_path)
    assert sandbox.run([str(prog)]).stdout == probe.marker("aarch64")  # real QEMU, so far
    # nobody's own program: an ELF (observed on 6.18: with O/C, a #! script as interpreter
    # does not run its own text; /bin/sh ends up reading the matched binary instead)
    theirs = probe.write_probe("x86_64", nobody_dir)
    os.chown(theirs, NOBODY, NOBODY)
    as_nobody(user, f"ln -sfn {theirs} {q}")
    hijacked = sandbox.run([str(prog)])  # root of the namespace runs an aarch64 program...
    assert hijacked.stdout == probe.marker("x86_64"), hijacked  # ...and nobody's code runs

    x = finding(doctor_findings(sandbox, root), "interpreter-untrusted", "t2")
    assert x["severity"] == "error" and str(nobody_dir) in x["message"]
    assert f"chown root:root {nobody_dir}" in x["fix"]


def test_nobody_owned_symlink_in_a_sticky_dir_is_named(
    sandbox: Sandbox, user: User, sticky_dir: Path, root: Path
) -> None:
    """The directory passes (root-owned, sticky): the link itself is what nobody controls."""
    q = sticky_dir / "q"
    as_nobody(user, f"ln -s {QEMU} {q}")
    p = run_cli(sandbox, "register", t2(q))
    clean(p)
    assert p.returncode == 1 and f"the symlink {q} is owned by uid {NOBODY}" in p.stderr
    assert f"points to {QEMU}" in p.stderr  # the fix names the real file
    root_link = sticky_dir / "r"
    root_link.symlink_to(QEMU)  # the same link owned by root is fine
    ok = run_cli(sandbox, "register", t2(root_link, name="t3"))
    clean(ok)
    assert ok.returncode == 0 and UNTRUSTED not in ok.stderr
    assert [n for n, _ in snapshot(sandbox)] == ["t3"]


def test_c_o_refused_in_install_import_and_apply(
    sandbox: Sandbox, user: User, nobody_dir: Path, tmp_path: Path
) -> None:
    as_nobody(user, f"cp {QEMU} {nobody_dir}/qemu-aarch64-static")
    cfg = tmp_path / "binfmtctl.conf"
    env = {"BINFMTCTL_CONFIG": str(cfg)}
    inst = run_cli(sandbox, "install", "aarch64", "--credentials", "--no-test",
                   "--qemu-path", str(nobody_dir), env=env)  # fmt: skip
    clean(inst)
    assert inst.returncode == 1 and f"owned by uid {NOBODY}" in inst.stderr
    src = tmp_path / "in.conf"
    src.write_text(t2(nobody_dir / "qemu-aarch64-static") + "\n")
    imp = run_cli(sandbox, "import", str(src), env=env)
    clean(imp)
    assert imp.returncode == 1 and f"owned by uid {NOBODY}" in imp.stderr and not cfg.exists()
    persist.write_config(cfg, [parse_register(t2(nobody_dir / "qemu-aarch64-static"), HOST)])
    app = run_cli(sandbox, "apply", env=env)
    clean(app)
    assert app.returncode == 1 and f"owned by uid {NOBODY}" in app.stdout + app.stderr
    assert snapshot(sandbox) == []


# -- item 6: other entries with an interpreter others control -----------------------------------------
@pytest.mark.parametrize("kind", ["nobody-file", "nobody-symlink", "missing-in-sticky"])
def test_untrusted_interpreter_is_warned_in_import_apply_and_found_by_doctor(
    kind: str,
    sandbox: Sandbox,
    user: User,
    sticky_dir: Path,
    tmp_path: Path,
    root: Path,
) -> None:
    if kind == "nobody-file":
        interp = sticky_dir / "qemu-aarch64-static"  # the directory passes: the file is theirs
        as_nobody(user, f"cp {QEMU} {interp}")
        why = f"{interp} is owned by uid {NOBODY}"
    elif kind == "nobody-symlink":
        interp = sticky_dir / "qemu"
        as_nobody(user, f"ln -s {QEMU} {interp}")
        why = f"the symlink {interp} is owned by uid {NOBODY}"
    else:
        interp = sticky_dir / "qemu-nobody-may-create"
        why = f"{interp} does not exist, and {sticky_dir} lets non-root users create it"
    line = t2(interp, flags="", name="plain")
    cfg = tmp_path / "binfmtctl.conf"
    env = {"BINFMTCTL_CONFIG": str(cfg)}

    v = run_cli(sandbox, "validate", "--json", line)
    clean(v)
    [verdict] = json.loads(v.stdout)
    assert verdict["valid"] and any(
        why in p["message"] and p["severity"] == "warning" for p in verdict["problems"]
    )

    src = tmp_path / "in.conf"
    src.write_text(line + "\n")
    imp = run_cli(sandbox, "import", str(src), env=env)
    clean(imp)
    assert imp.returncode == 0 and UNTRUSTED in imp.stderr and why in imp.stderr
    app = run_cli(sandbox, "apply", env=env)
    clean(app)
    assert app.returncode == 0 and why in app.stdout + app.stderr
    assert [n for n, _ in snapshot(sandbox)] == ["plain"]

    x = finding(doctor_findings(sandbox, root), "interpreter-untrusted", "plain")
    assert x["severity"] == "warning" and why in x["message"] and x["fix"]


def test_register_warns_but_registers_without_c_o(
    sandbox: Sandbox, user: User, nobody_dir: Path
) -> None:
    as_nobody(user, f"cp {QEMU} {nobody_dir}/qemu")
    p = run_cli(sandbox, "register", t2(nobody_dir / "qemu", flags="F", name="w"))
    clean(p)
    assert p.returncode == 0 and "warning:" in p.stderr and UNTRUSTED in p.stderr
    assert [n for n, _ in snapshot(sandbox)] == ["w"]


# -- item 2: host hijack, decided by matching --------------------------------------------------------
HIJACKS: dict[str, str] = {
    "x86_64-non-pie": (
        r":h1:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00"
        "::/bin/true:"
    ),
    "shebang": ":h3:M::#!::/bin/true:",
    "sh-extension": ":h4:E::sh::/bin/true:",
    "i386": render_register_str(
        table.get_target("i386").entry("/usr/bin/qemu-i386-static", "F", "h5")
    ),
}


@pytest.mark.parametrize("line", HIJACKS.values(), ids=HIJACKS.keys())
def test_hijack_refused_in_register_and_apply_forced_and_then_found(
    line: str, sandbox: Sandbox, tmp_path: Path, root: Path
) -> None:
    e: Entry = parse_register(line.encode(), HOST)
    reg = run_cli(sandbox, "register", line)
    clean(reg)
    assert reg.returncode == 1 and "runs natively" in reg.stderr and "--force" in reg.stderr
    cfg = tmp_path / "binfmtctl.conf"
    persist.write_config(cfg, [e])
    app = run_cli(sandbox, "apply", env={"BINFMTCTL_CONFIG": str(cfg)})
    clean(app)
    assert app.returncode == 1 and "runs natively" in app.stdout + app.stderr
    imp_src = tmp_path / "in.conf"
    imp_src.write_text(line + "\n")
    imp = run_cli(sandbox, "import", str(imp_src), env={"BINFMTCTL_CONFIG": str(tmp_path / "n")})
    clean(imp)
    assert imp.returncode == 1 and "runs natively" in imp.stderr
    assert snapshot(sandbox) == []

    forced = run_cli(sandbox, "register", "--force", line)
    clean(forced)
    assert forced.returncode == 0 and [n for n, _ in snapshot(sandbox)] == [e.name]
    x = finding(doctor_findings(sandbox, root), "host-hijack", e.name)
    assert x["severity"] == "error" and "runs natively" in x["message"]
    assert f"binfmtctl remove {e.name}" in x["fix"]


def test_forced_apply_registers_the_hijack(sandbox: Sandbox, tmp_path: Path) -> None:
    cfg = tmp_path / "binfmtctl.conf"
    persist.write_config(cfg, [parse_register(HIJACKS["shebang"].encode(), HOST)])
    p = run_cli(sandbox, "apply", "--force", env={"BINFMTCTL_CONFIG": str(cfg)})
    clean(p)
    assert p.returncode == 0 and [n for n, _ in snapshot(sandbox)] == ["h3"]
