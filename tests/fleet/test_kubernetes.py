"""deploy/kubernetes: the manifests validate against a current Kubernetes, and the DaemonSet's
init container, run exactly as written (command, env, privileges, mounts) with podman in a
private binfmt_misc, leaves the table installed and working."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.conftest import MNT, ROOT, RUN_FLAGS, Podman

pytestmark = pytest.mark.fleet

KDIR = ROOT / "deploy" / "kubernetes"
#: a current Kubernetes, named so that a stale validator (without its schemas) fails loudly
#: instead of quietly checking an older API
KUBERNETES = "1.37.0"


def _docs() -> dict[str, list[dict[str, Any]]]:
    return {f.name: list(yaml.safe_load_all(f.read_text())) for f in sorted(KDIR.glob("*.yaml"))}


def test_every_manifest_validates_strictly_against_a_current_kubernetes() -> None:
    files = [str(KDIR / n) for n in _docs() if n != "kustomization.yaml"]
    assert len(files) >= 3
    p = subprocess.run(
        [
            str(Path(sys.executable).parent / "kubernetes-validate"),
            "--strict",
            "-k",
            KUBERNETES,
            *files,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count(" passed ") == len(files), p.stdout


def test_the_kustomization_lists_every_manifest_and_only_existing_ones() -> None:
    kust = yaml.safe_load((KDIR / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(n for n in _docs() if n != "kustomization.yaml")


def _config() -> dict[str, str]:
    (cm,) = _docs()["configmap.yaml"]
    data: dict[str, str] = cm["data"]
    return data


def podman_args(
    container: Mapping[str, Any],
    volumes: Mapping[str, Any],
    config: Mapping[str, str],
    host_dirs: Mapping[str, str],
) -> list[str]:
    """`podman run` options reproducing a pod container: privileges, env (ConfigMap keys
    resolved), hostPath mounts (each host path replaced by ``host_dirs[path]``), command."""
    args: list[str] = []
    if container.get("securityContext", {}).get("privileged"):
        args.append("--privileged")
    for e in container.get("env", []):
        value = e.get("value")
        if value is None:
            value = config[e["valueFrom"]["configMapKeyRef"]["key"]]
        args += ["-e", f"{e['name']}={value}"]
    by_name = {v["name"]: v for v in volumes}
    for m in container.get("volumeMounts", []):
        host = host_dirs[by_name[m["name"]]["hostPath"]["path"]]
        args += ["-v", f"{host}:{m['mountPath']}{':ro' if m.get('readOnly') else ''}"]
    args += ["--entrypoint", json.dumps(container["command"][:1])]
    return [*args, "IMAGE", *container["command"][1:], *container.get("args", [])]


def test_the_init_container_as_written_leaves_the_table_installed(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    (ds,) = _docs()["daemonset.yaml"]
    spec = ds["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    state = tmp_path / "node-run-binfmtctl"  # the node's hostPath, here a scratch dir
    state.mkdir()
    args = podman_args(init, spec["volumes"], _config(), {"/run/binfmtctl": str(state)})
    run = shlex.join(["run", "--rm", *RUN_FLAGS, *args]).replace("IMAGE", image)
    targets = _config()["targets"].split()
    p = podman.session(
        f"$PODMAN {run}\n"
        "echo '--- outside'\n"
        f'test -z "$($PODMAN ps -aq)"\n'
        f"ls {MNT}\n"
        "$PYTHON -m binfmtctl test --json " + " ".join(targets) + "\n"
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    installed, outside = p.stdout.split("--- outside\n")
    assert "done: 4 entries registered or replaced" in installed
    listing, _, probes = outside.partition("{")
    assert set(listing.split()) >= {"qemu-aarch64", "qemu-riscv64", "qemu-s390x", "qemu-ppc64le"}
    results = json.loads("{" + probes)["targets"]
    assert [(r["target"], r["ok"]) for r in results] == [
        ("aarch64", True),
        ("riscv64", True),
        ("s390x", True),
        ("ppc64le", True),
    ]
    # the ownership records landed on the node's hostPath, not in the discarded container
    assert any(state.rglob("*")), "no ownership record on the hostPath volume"


def test_the_watch_container_as_written_logs_one_doctor_json_line_per_check(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    (ds,) = _docs()["daemonset.yaml"]
    spec = ds["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    (watch,) = spec["containers"]
    state = tmp_path / "node-run-binfmtctl"
    state.mkdir()
    dirs = {"/run/binfmtctl": str(state)}
    init_run = shlex.join(
        ["run", "--rm", *RUN_FLAGS, *podman_args(init, spec["volumes"], _config(), dirs)]
    )
    watch_run = shlex.join(["run", "-d", "--name", "watch", *RUN_FLAGS])
    watch_run += " " + shlex.join(podman_args(watch, spec["volumes"], _config(), dirs))
    p = podman.session(
        f"$PODMAN {init_run.replace('IMAGE', image)} >/dev/null\n"
        f"$PODMAN {watch_run.replace('IMAGE', image)} >/dev/null\n"
        # wait for the first check's line (the next comes only after the interval)
        'until [ -n "$($PODMAN logs watch)" ]; do sleep 1; done\n'
        "$PODMAN logs watch | head -n 1\n"
        "$PODMAN rm -f -t 0 watch >/dev/null\n"
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    (line,) = p.stdout.splitlines()
    findings = json.loads(line)["findings"]
    # it sees the node's table the init container filled, and the targets work: no error, and
    # about those entries only the warning that the node itself does not persist them (the
    # DaemonSet does)
    ours = {"qemu-aarch64", "qemu-riscv64", "qemu-s390x", "qemu-ppc64le"}
    assert not [f for f in findings if f["severity"] == "error"], findings
    about_ours = {f["code"] for f in findings if f["entry"] in ours and f["severity"] != "info"}
    assert about_ours <= {"not-persistent"}, findings
    codes = {f["code"] for f in findings}
    assert not codes & {"not-mounted", "mount-missing", "automount-untriggered"}, findings
