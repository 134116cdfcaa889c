"""deploy/Containerfile: built with podman, run --privileged as setup-qemu-action runs
tonistiigi/binfmt, and the registrations it leaves work OUTSIDE any container."""

from __future__ import annotations

import json

import pytest

from tests.fleet.conftest import MNT, RUN_FLAGS, Podman

pytestmark = pytest.mark.fleet

RUN = " ".join(("run", "--rm", "--privileged", *RUN_FLAGS))


def _json_blocks(out: str) -> list[dict[str, list[str]]]:
    """The status objects printed one after another (indented JSON)."""
    dec = json.JSONDecoder()
    blocks, i = [], 0
    while (i := out.find("{", i)) != -1:
        obj, end = dec.raw_decode(out, i)
        blocks.append(obj)
        i = end
    return blocks


def test_install_as_setup_qemu_action_does_then_run_foreign_binaries_outside(
    podman: Podman, image: str
) -> None:
    p = podman.session(
        # exactly the two commands docker/setup-qemu-action runs
        f"$PODMAN {RUN} {image} --install arm64,riscv64,s390x\n"
        "echo '--- after'\n"
        # no container is left: the entries work because F pinned QEMU from the image
        f'test -z "$($PODMAN ps -aq)"\n'
        f'for f in {MNT}/qemu-*; do echo "== $f"; cat $f; done\n'
        "echo '--- probes'\n"
        "$PYTHON -m binfmtctl test --json aarch64 riscv64 s390x\n"
        "echo '--- status'\n"
        f"$PODMAN {RUN} {image}\n"
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    install_out, rest = p.stdout.split("--- after\n")
    entries, rest = rest.split("--- probes\n")
    probes_out, status_out = rest.split("--- status\n")
    for arch in ("aarch64", "riscv64", "s390x"):
        assert f"installing: {arch} OK" in p.stderr
        block = entries.split(f"== {MNT}/qemu-{arch}\n")[1].split("==")[0]
        flags = next(ln for ln in block.splitlines() if ln.startswith("flags: "))
        assert "F" in flags, block  # pinned: outlives the container
        assert "C" not in flags
    probes = json.loads(probes_out)["targets"]
    assert [(r["target"], r["ok"]) for r in probes] == [
        ("aarch64", True),
        ("riscv64", True),
        ("s390x", True),
    ], probes
    # the no-argument status, as the action parses it (last JSON document on stdout)
    status = _json_blocks(status_out)[-1]
    assert {"linux/arm64", "linux/riscv64", "linux/s390x", "linux/amd64"} <= set(
        status["supported"]
    )
    assert "linux/ppc64le" not in status["supported"]
    assert status["emulators"] == ["qemu-aarch64", "qemu-riscv64", "qemu-s390x"]
    # the install run printed the status too (tonistiigi does)
    assert _json_blocks(install_out)[-1]["emulators"] == status["emulators"]


def test_failures_exit_1_with_the_reason_on_the_last_stderr_line(
    podman: Podman, image: str
) -> None:
    p = podman.session(
        f"$PODMAN {RUN} {image} --install arm64\n"
        f"set +e\n$PODMAN {RUN} {image} --uninstall qemu-aarch64,nosuch; echo rc=$?\n"
        f"$PODMAN {RUN} {image} --install not-an-arch; echo rc=$?\n"
        f"$PODMAN {RUN} {image} doctor --json >/dev/null; echo rc=$?\n"
        f"ls {MNT}\n"
    )
    assert p.returncode == 0, p.stderr[-3000:]
    rcs = [ln for ln in p.stdout.splitlines() if ln.startswith("rc=")]
    # tonistiigi exits 0 on all of these; the action then shows nothing useful
    assert rcs[:2] == ["rc=1", "rc=2"], p.stdout
    assert rcs[2] in ("rc=0", "rc=1")  # native commands run in the image (doctor's own status)
    assert "uninstalling: qemu-aarch64 OK" in p.stderr
    assert "uninstalling: nosuch error: not found" in p.stderr
    assert "error: unknown target 'not-an-arch'" in p.stderr
    assert "qemu-aarch64" not in p.stdout.split("rc=2")[-1]  # it was removed


def test_the_image_is_small_no_compiler_no_pip_no_cache(podman: Podman, image: str) -> None:
    p = podman.session(
        f"$PODMAN {' '.join(('run', '--rm', *RUN_FLAGS))} --entrypoint sh {image} -c '"
        "for c in gcc cc g++ make pip pip3; do command -v $c && echo HAS-$c; done; "
        "ls -d /root/.cache/pip /opt/binfmtctl/lib/python3*/site-packages/pip 2>/dev/null; "
        "ls /var/lib/apt/lists | grep -v -e lock -e partial; "
        '/opt/binfmtctl/bin/python -c "import binfmtctl, sys; print(binfmtctl.__file__)"\'\n'
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "HAS-" not in p.stdout, p.stdout
    assert p.stdout.strip().splitlines() == [
        "/opt/binfmtctl/lib/python3.11/site-packages/binfmtctl/__init__.py"
    ], p.stdout
