"""The newcomer's two commands: the README's set-up and test commands are the ones CI runs,
the set-up works as root without sudo and as a user with sudo, and the README's install
gives everything the README's test command needs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NOBODY, ROOT, shared_tmpdir

README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"


def readme_block(name: str, text: str | None = None) -> str:
    """The README's command after the ``<!-- NAME-command`` marker, parsed here on its own."""
    text = README.read_text() if text is None else text
    m = re.search(rf"^<!-- {name}-command[^\n]*\n```[a-z]*\n(.*?)^```", text, re.M | re.S)
    assert m, f"no {name}-command block in the README"
    return m.group(1)


def ci_extract(name: str, readme: Path = README) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ROOT / ".ci" / "readme-command"), name, str(readme)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("name", ["setup", "test"])
def test_ci_extracts_exactly_the_readme_command(name: str) -> None:
    text = README.read_text()
    assert text.count(f"<!-- {name}-command") == 1
    p = ci_extract(name)
    assert p.returncode == 0, p.stderr
    assert p.stdout == readme_block(name) and p.stdout.strip()


def test_ci_extraction_follows_an_edited_readme(tmp_path: Path) -> None:
    """Changing the README changes what CI runs; a README without the block fails CI."""
    edited = tmp_path / "README.md"
    edited.write_text(README.read_text().replace("-m pytest", "-m pytest -x"))
    assert ci_extract("test", edited).stdout == ".venv/bin/python -m pytest -x\n"
    edited.write_text("# nothing here\n")
    p = ci_extract("setup", edited)
    assert p.returncode != 0 and "setup-command" in p.stderr


def test_ci_runs_the_readme_commands_and_nothing_in_their_place() -> None:
    lines = [ln.strip() for ln in CI_RUN.read_text().splitlines()]
    code = [ln for ln in lines if ln and not ln.startswith("#")]
    assert "setup=$(sh .ci/readme-command setup)" in code
    assert 'sh -c "$setup"' in code
    assert "test_command=$(sh .ci/readme-command test)" in code
    assert 'sh -c "$test_command" 2>&1 | tee "$log"' in code
    # no install or test run of its own before the README's commands, which would hide theirs
    first = code.index('sh -c "$setup"')
    tested = code.index('sh -c "$test_command" 2>&1 | tee "$log"')
    assert not any(re.search(r"\bpip\b|pytest|\bvenv\b", ln) for ln in code[:tested])
    assert first < tested
    linters = next(i for i, ln in enumerate(code) if "'.[dev]'" in ln)
    assert linters > tested  # linters may follow
    # still fails on any skipped test, and still lifts Ubuntu's AppArmor userns restriction
    assert any("grep -E '^SKIPPED'" in ln for ln in code[tested:])
    assert any("apparmor_restrict_unprivileged_userns=0" in ln for ln in code[:first])


def test_readme_install_gives_what_the_test_command_needs() -> None:
    """tests/test_packaging.py builds the wheel without build isolation, so the build backend
    must come with the README's install (`.[test]`), not only with `.[dev]`."""
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "-e '.[test]'" in setup
    pyproject = (ROOT / "pyproject.toml").read_text()  # (tomllib is 3.11+; we support 3.10)

    def names(key: str) -> set[str]:
        m = re.search(rf"^{key} = \[(.*?)\]", pyproject, re.M | re.S)
        assert m, key
        reqs = re.findall(r'"([^"]+)"', m.group(1))
        return {re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0].lower() for r in reqs}

    assert names("requires") and names("requires") <= names("test")
    assert "--no-build-isolation" in (ROOT / "tests" / "test_packaging.py").read_text()


# -- the set-up script, with apt-get, sudo and python3 stubbed -------------------------------------
STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$SETUP_LOG"
"""
SUDO_STUB = STUB + 'exec "$@"\n'
PYTHON_STUB = (
    STUB
    + """if [ "$1 $2" = "-m venv" ]; then
    mkdir -p "$3/bin"
    printf '#!/bin/sh\\necho "venv-python $*" >> "$SETUP_LOG"\\n' > "$3/bin/python"
    chmod +x "$3/bin/python"
fi
[ "$1" != -c ]  # the probe for python3-venv fails: apt is needed
"""
)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A scratch directory uid 65534 can reach too (pytest's tmp_path is root's, 0700)."""
    with shared_tmpdir("binfmtctl-setup-") as d:
        yield d


def setup_checkout(tmp_path: Path, with_sudo: bool) -> tuple[Path, Path, Path]:
    """A copy of scripts/setup.sh in a scratch checkout, and a PATH holding only the basic
    tools and stubs (so apt looks needed)."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "setup.sh", checkout / "scripts" / "setup.sh")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("id", "dirname", "env", "mkdir", "chmod", "basename", "cat"):
        found = shutil.which(tool)
        assert found, tool
        (bindir / tool).symlink_to(found)
    (bindir / "apt-get").write_text(STUB)
    (bindir / "python3").write_text(PYTHON_STUB)
    if with_sudo:
        (bindir / "sudo").write_text(SUDO_STUB)
    for f in bindir.iterdir():
        if not f.is_symlink():
            f.chmod(0o755)
    log = tmp_path / "log"
    log.write_text("")
    for p in (tmp_path, checkout, checkout / "scripts", log):
        p.chmod(0o777 if p.is_dir() else 0o666)
    return checkout, bindir, log


def run_setup(checkout: Path, bindir: Path, log: Path, *, drop: tuple[str, ...] = ()) -> str:
    env = {"PATH": str(bindir), "SETUP_LOG": str(log), "HOME": str(checkout)}
    p = subprocess.run(
        [*drop, "/bin/sh", str(checkout / "scripts" / "setup.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    return log.read_text()


def test_setup_as_root_without_sudo(scratch: Path) -> None:
    """As root with no sudo binary at all (build containers, CI images): apt-get directly."""
    if os.geteuid() == 0:
        checkout, bindir, log = setup_checkout(scratch, with_sudo=False)
        out = run_setup(checkout, bindir, log)
    else:  # root of a user namespace is root to the script, and has no sudo either
        checkout, bindir, log = setup_checkout(scratch, with_sudo=False)
        unshare = shutil.which("unshare")
        assert unshare, "unshare (util-linux) is needed"
        out = run_setup(checkout, bindir, log, drop=(unshare, "--user", "--map-root-user"))
    assert "sudo" not in out
    assert "apt-get update\n" in out
    assert "apt-get install -y python3-venv qemu-user-static util-linux systemd" in out
    assert "python3 -m venv .venv" in out
    assert "venv-python -m pip install -e .[test]" in out


def test_setup_as_a_user_with_sudo(scratch: Path) -> None:
    """As a user: apt-get through sudo, the venv as the user."""
    checkout, bindir, log = setup_checkout(scratch, with_sudo=True)
    drop: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop to uid 65534"
        drop = (setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--")
    out = run_setup(checkout, bindir, log, drop=drop)
    assert "sudo apt-get update\n" in out
    assert (
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv "
        "qemu-user-static util-linux systemd" in out
    )
    lines = out.splitlines()
    assert "python3 -m venv .venv" in lines and "venv-python -m pip install -e .[test]" in lines
    assert [ln for ln in lines if ln.startswith("sudo")] == [
        "sudo apt-get update",
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv "
        "qemu-user-static util-linux systemd",
    ]  # the venv is the user's own
    assert (checkout / ".venv" / "bin" / "python").exists()
