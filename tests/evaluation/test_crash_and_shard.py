"""Crash safety (SIGKILL mid-run, then resume) and torchrun sharding, against uninterrupted single runs.

Both start real subprocesses running tests/evaluation/worker.py with the tiny stand-ins.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.evaluation.fakes import FACTORIES, load_fake_config, write_config
from vidadv.experiments import run_attack
from vidadv.utils.io import TEMP_SUFFIX, load_tensor_metadata, load_tensors

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "evaluation" / "worker.py"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONPATH": str(REPO) + os.pathsep + str(REPO / "src"), "OMP_NUM_THREADS": "1"}, **extra)
    return env


def _adv_files(out: Path) -> dict[str, Path]:
    return {str(p.relative_to(out)): p for p in sorted((out / "adv").rglob("*.safetensors"))}


def _tensor_bytes(path: Path) -> bytes:
    tensor = load_tensors(path)["adv"]
    return bytes(tensor.numpy().tobytes()) + str((tensor.dtype, tuple(tensor.shape))).encode()


def _reference(tmp_path: Path, **overrides: object) -> dict[str, bytes]:
    config = load_fake_config(
        write_config(tmp_path / "ref.yaml", tmp_path / "ref", selection="auto", **overrides)
    )
    assert run_attack(config, progress=False, **FACTORIES) == 0
    return {name: _tensor_bytes(path) for name, path in _adv_files(tmp_path / "ref").items()}


def _wait_for_files(out: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(_adv_files(out)) < count:
        if process.poll() is not None:
            raise AssertionError(f"worker ended (rc {process.returncode}) before writing {count} files")
        if time.monotonic() > deadline:
            raise AssertionError(f"worker wrote fewer than {count} files in {timeout} s")
        time.sleep(0.005)


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    overrides = {"dataset": {"name": "fake", "num_clips": 20, "seed": 2}}
    reference = _reference(tmp_path, **overrides)
    assert len(reference) > 60
    config_path = write_config(tmp_path / "run.yaml", tmp_path / "out", selection="auto", **overrides)
    out = tmp_path / "out"
    for kill_after in (10, len(reference) // 2, len(reference) - 5):
        process = subprocess.Popen(
            [sys.executable, str(WORKER), str(config_path)],
            env=_env(VIDADV_TEST_ATTACK_SLEEP="0.03"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _wait_for_files(out, kill_after, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        files = _adv_files(out)
        assert len(files) < len(reference) and set(files) <= set(reference)
        for name, path in files.items():  # no truncated or foreign file, whenever the kill came
            assert _tensor_bytes(path) == reference[name], name
            assert json.loads(load_tensor_metadata(path)["record"])["clip_id"]
    finished = subprocess.run(
        [sys.executable, str(WORKER), str(config_path)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    files = _adv_files(out)
    assert set(files) == set(reference)
    assert all(_tensor_bytes(path) == reference[name] for name, path in files.items())
    assert not [p for p in out.rglob("*") if p.name.endswith(TEMP_SUFFIX)]
    assert json.loads((out / "attack_summary.json").read_text())["complete"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_write_the_same_tensors_as_one(tmp_path: Path) -> None:
    overrides = {"max_clips": 10, "batch_size": 2}
    reference = _reference(tmp_path, **overrides)
    config_path = write_config(tmp_path / "dist.yaml", tmp_path / "out", selection="auto", **overrides)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(WORKER),
        str(config_path),
    ]
    result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    files = _adv_files(out)
    assert set(files) == set(reference)
    assert all(_tensor_bytes(path) == reference[name] for name, path in files.items())
    ranks = {json.loads(load_tensor_metadata(p)["record"])["rank"] for p in files.values()}
    assert ranks == {0, 1}
    selection = json.loads((out / "selection.json").read_text())
    reference_selection = json.loads((tmp_path / "ref" / "selection.json").read_text())
    assert selection["selected"] == reference_selection["selected"]
    assert json.loads((out / "attack_summary.json").read_text())["complete"]
    assert result.stdout.count("adversarial clips (complete)") == 1  # only rank 0 prints the summary
