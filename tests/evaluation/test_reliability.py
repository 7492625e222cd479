"""A run's files vouch for themselves, and faults are one clear line: damaged or foreign-budget clip files
are refused by `evaluate`, `--force` after an eps change redoes the old files, two processes cannot share a
run folder, and OS errors (existing file as output folder, read-only storage, disk full, file too large)
name the path and the cause."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.evaluation.fakes import (
    FAKES,
    FakeDataset,
    dataset_factory,
    load_fake_config,
    model_factory,
    write_config,
)
from vidadv.cli import main, report_errors
from vidadv.experiments import run_attack, run_evaluate
from vidadv.experiments.runfiles import (
    AdversarialFileError,
    Budget,
    adversarial_metadata,
    file_checksum,
    load_verified_clip,
)
from vidadv.experiments.runtime import default_attack_factory, default_dataset_factory
from vidadv.utils.io import (
    TEMP_SUFFIX,
    FolderLockedError,
    atomic_save_tensors,
    atomic_write_bytes,
    exclusive_lock,
    load_tensor_metadata,
    load_tensors,
    remove_stale_temporaries,
)

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tests" / "evaluation" / "worker.py"
EPS = 4 / 255
SMALL = {
    "dataset": {"name": "fake", "num_clips": 6, "seed": 3},
    "whitebox": ["A"],
    "attacks": [{"name": "FGSM", "spec": "fgsm"}, {"name": "RAND", "spec": "rand"}],
    "selection": "auto",
}


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}, **extra)
    return env


def _worker(*args: str, preexec: Any = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORKER), *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=preexec,
    )


def _adv_files(out: Path) -> list[Path]:
    return sorted((out / "adv").rglob("*.safetensors"))


def _tensors(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): load_tensors(p)["adv"].numpy().tobytes() for p in _adv_files(out)}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small")
    config = load_fake_config(write_config(root / "config.yaml", root / "out", **SMALL))
    assert run_attack(config, progress=False, factories=FAKES) == 0
    return root / "out"


@pytest.fixture
def run_copy(small_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(small_run, out)
    return out


def _evaluate(run: Path, **kwargs: Any) -> int:
    # fake models; the clean clips for the budget check come from the real dataset factory unless given
    dataset = kwargs.pop("dataset_factory", default_dataset_factory)
    factories = dataclasses.replace(FAKES, build_dataset=dataset)
    return run_evaluate(run, progress=False, gallery=0, factories=factories, **kwargs)


# ------------------------------------------------------------------------------------------------
# Adversarial files: checksum, budget, range, finiteness
# ------------------------------------------------------------------------------------------------


def test_every_file_records_its_budget_and_a_checksum_of_its_bytes(small_run: Path) -> None:
    files = _adv_files(small_run)
    assert len(files) == 2 * len(json.loads((small_run / "selection.json").read_text())["selected"])
    for path in files:
        metadata = load_tensor_metadata(path)
        assert json.loads(metadata["budget"]) == {"eps": pytest.approx(EPS, rel=1e-12), "norm": "linf"}
        tensor = load_tensors(path)["adv"]
        assert metadata["sha256"] == file_checksum(tensor, metadata["budget"], metadata["record"])
        flipped = tensor.clone()
        flipped.view(-1)[0] = flipped.view(-1)[0] + 1 / 1024  # any change of the bytes changes it
        assert file_checksum(flipped, metadata["budget"], metadata["record"]) != metadata["sha256"]


def _resign(path: Path, adv: torch.Tensor) -> None:
    """Rewrite `path` with another tensor and a *valid* checksum (a buggy writer, not damage)."""
    metadata = load_tensor_metadata(path)
    record = json.loads(metadata["record"])
    budget = Budget(**json.loads(metadata["budget"]))
    atomic_save_tensors(path, {"adv": adv}, adversarial_metadata(adv, record, budget))


def _flip_exponent_bit(path: Path) -> None:
    """Flip the top exponent bit of the first float32 of the tensor data (0.5 -> 1.7e38)."""
    data = bytearray(path.read_bytes())
    header = struct.unpack("<Q", data[:8])[0]
    first = 8 + header  # the tensor data follows the 8-byte length and the JSON header
    data[first + 3] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("exponent bit", "checksum mismatch"),
        ("all NaN", r"NaN/Inf value\(s\), the first nan"),
        ("1.8e38", r"value 1\.8e\+38 at \(c, t, h, w\) = \(0, 0, 0, 0\) is outside \[0, 1\]"),
        (
            "noise over budget",
            r"distance to the clean clip 0\.0[0-9]+ .* exceeds the budget linf eps 0\.0156863",
        ),
    ],
)
def test_evaluate_refuses_a_damaged_file_naming_it(run_copy: Path, damage: str, message: str) -> None:
    path = _adv_files(run_copy)[1]
    adv = load_tensors(path)["adv"]
    if damage == "exponent bit":
        _flip_exponent_bit(path)
    elif damage == "all NaN":
        _resign(path, torch.full_like(adv, float("nan")))
    elif damage == "1.8e38":
        adv.view(-1)[0] = 1.8e38
        _resign(path, adv)
    else:  # inside [0, 1], but 3 x the budget from the clean clip
        noise = torch.where(torch.arange(adv.numel()) % 2 == 0, 3 * EPS, -3 * EPS).view_as(adv)
        _resign(path, (adv + noise).clamp(0, 1))
    with pytest.raises(AdversarialFileError, match=message) as info:
        _evaluate(run_copy, dataset_factory=dataset_factory)
    assert path.name in str(info.value)


def test_without_the_dataset_the_checksummed_record_vouches_for_the_budget(run_copy: Path, capsys) -> None:
    # the fake dataset cannot be opened by the default factory: the recorded distance is checked instead
    assert _evaluate(run_copy) == 0
    assert "cannot open the dataset" in capsys.readouterr().err
    path = _adv_files(run_copy)[0]
    metadata = load_tensor_metadata(path)
    record = json.loads(metadata["record"])
    record["linf"] = 3 * EPS
    tensor = load_tensors(path)["adv"]
    atomic_save_tensors(path, {"adv": tensor}, adversarial_metadata(tensor, record, Budget(EPS)))
    with pytest.raises(AdversarialFileError, match=r"recorded distance 0\.047.*exceeds the budget"):
        _evaluate(run_copy)


def test_legacy_files_without_a_checksum_are_accepted_with_one_warning(run_copy: Path, capsys) -> None:
    for path in _adv_files(run_copy):
        metadata = load_tensor_metadata(path)
        legacy = {"format": metadata["format"], "record": metadata["record"]}
        atomic_save_tensors(path, {"adv": load_tensors(path)["adv"]}, legacy)
    assert _evaluate(run_copy, dataset_factory=dataset_factory) == 0
    err = capsys.readouterr().err
    assert err.count("carries no checksum or budget") == 1 and "--no-resume" in err
    path = _adv_files(run_copy)[0]  # a legacy file is still checked against its clean clip
    adv = load_tensors(path)["adv"]
    far = (adv + torch.where(adv > 0.5, -3 * EPS, 3 * EPS)).clamp(0, 1)
    atomic_save_tensors(path, {"adv": far}, {"format": "vidadv-adv/1", "record": "{}"})
    with pytest.raises(AdversarialFileError, match="distance to the clean clip"):
        _evaluate(run_copy, dataset_factory=dataset_factory)


def test_load_verified_clip_checks_the_norm_of_the_budget(tmp_path: Path) -> None:
    clean = torch.full((3, 2, 4, 4), 0.5)
    adv = clean + 0.01  # L-inf 0.01, L2 0.01 * sqrt(96) = 0.098
    record = {"linf": 0.01}
    path = atomic_save_tensors(
        tmp_path / "x.safetensors", {"adv": adv}, adversarial_metadata(adv, record, Budget(0.05, "l2"))
    )
    with pytest.raises(AdversarialFileError, match=r"distance to the clean clip 0\.0979"):
        load_verified_clip(path, Budget(0.05, "l2"), 1e-6, clean)
    assert torch.equal(load_verified_clip(path, Budget(0.05, "l2"), 0.05, clean), adv)
    with pytest.raises(AdversarialFileError, match="was made with budget l2 eps 0.05"):
        load_verified_clip(path, Budget(0.05, "linf"), 1e-6, clean)


# ------------------------------------------------------------------------------------------------
# Budget changes
# ------------------------------------------------------------------------------------------------


def test_force_after_changing_eps_redoes_the_files_of_the_old_budget(run_copy: Path, tmp_path: Path) -> None:
    assert _evaluate(run_copy) == 0  # fills the prediction cache with the 4/255 files
    changed = load_fake_config(write_config(tmp_path / "eps2.yaml", run_copy, eps="2/255", **SMALL))
    record = json.loads((run_copy / "run_config.json").read_text())
    record["config"]["eps"] = 2 / 255  # what `--force` records first, before an interrupted attack
    (run_copy / "run_config.json").write_text(json.dumps(record))
    with pytest.raises(
        AdversarialFileError, match=r"made with budget linf eps 0\.0156863 .* uses linf eps 0\.00784"
    ):
        _evaluate(run_copy)  # cached predictions of 4/255 files are not scored as 2/255
    assert run_attack(changed, force=True, progress=False, factories=FAKES) == 0
    for path in _adv_files(run_copy):
        metadata = load_tensor_metadata(path)
        assert json.loads(metadata["budget"])["eps"] == pytest.approx(2 / 255)
        assert json.loads(metadata["record"])["linf"] <= 2 / 255 + 1e-6
    assert _evaluate(run_copy) == 0


def test_the_runner_refuses_to_write_a_clip_over_its_budget(tmp_path: Path) -> None:
    def loose_attack(spec: str, model: Any, **options: Any) -> Any:
        return lambda x, y, seed=0: (x + 2 * options["eps"]).clamp(0, 1)

    config = load_fake_config(write_config(tmp_path / "c.yaml", tmp_path / "out", **SMALL))
    factories = dataclasses.replace(FAKES, build_attack=loose_attack)
    with pytest.raises(ValueError, match=r"returned for clip .* over its budget linf eps 0\.0156863"):
        run_attack(config, progress=False, factories=factories)
    assert _adv_files(tmp_path / "out") == []


# ------------------------------------------------------------------------------------------------
# Concurrency
# ------------------------------------------------------------------------------------------------


def test_a_second_attack_on_the_same_folder_is_refused_naming_the_first(tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "c.yaml", tmp_path / "out", **SMALL)
    first = subprocess.Popen(
        [sys.executable, str(WORKER), str(config_path)],
        env=_env(VIDADV_TEST_ATTACK_SLEEP="3"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        lock = tmp_path / "out" / ".vidadv.lock"
        while not (lock.is_file() and lock.read_text().startswith(f"{first.pid}@")):
            assert first.poll() is None and time.monotonic() < deadline, "the first process did not start"
            time.sleep(0.05)
        second = _worker(str(config_path), "--cli")
        assert second.returncode == 1
        assert f"in use by another vidadv process (pid {first.pid}, vidadv attack)" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:] if first.stderr else ""
    assert json.loads((tmp_path / "out" / "attack_summary.json").read_text())["complete"]


def test_evaluate_is_refused_while_another_process_evaluates(run_copy: Path) -> None:
    with exclusive_lock(run_copy / "eval", "vidadv run_evaluate"):  # another open file: flock conflicts
        with pytest.raises(FolderLockedError, match=rf"pid {os.getpid()}, vidadv run_evaluate"):
            _evaluate(run_copy)
    assert _evaluate(run_copy) == 0


def test_only_temporaries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    from vidadv.utils.io import _host

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    try:
        names = {
            "live": f".clip.safetensors.{sleeper.pid}@{_host()}.abcd1234{TEMP_SUFFIX}",
            "mine": f".clip.safetensors.{os.getpid()}@{_host()}.abcd1234{TEMP_SUFFIX}",
            "dead": f".clip.safetensors.{finished.pid}@{_host()}.abcd1234{TEMP_SUFFIX}",
            "other host": f".clip.safetensors.1@elsewhere-0.abcd1234{TEMP_SUFFIX}",
            "old vidadv": f".clip.safetensors.abcd1234{TEMP_SUFFIX}",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"half")
        assert remove_stale_temporaries(tmp_path) == 2
        left = {kind for kind, name in names.items() if (tmp_path / name).exists()}
        assert left == {"live", "mine", "other host"}
    finally:
        sleeper.kill()
        sleeper.wait()


# ------------------------------------------------------------------------------------------------
# OS errors: one line naming the path and the cause, exit code 1
# ------------------------------------------------------------------------------------------------


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("(rerun with --debug")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_an_output_dir_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    result = _worker(str(write_config(tmp_path / "c.yaml", blocker, **SMALL)), "--cli")
    assert result.returncode == 1
    assert str(blocker) in _one_line(result.stderr) and "File exists" in result.stderr


def test_demo_out_that_is_a_file(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "demo"
    blocker.write_text("x")
    assert main(["demo", "--quick", "--out", str(blocker)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert str(blocker) in line and "vidadv demo: error:" in line


def test_evaluate_device_typo_is_a_usage_error(run_copy: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["evaluate", str(run_copy), "--device", "banana"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--device" in err and "got 'banana'" in err


@pytest.mark.parametrize(
    ("code", "cause"), [(errno.ENOSPC, "No space left on device"), (errno.EDQUOT, "quota")]
)
def test_disk_full_names_the_file_and_keeps_the_run_intact(
    run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, code: int, cause: str
) -> None:
    config = load_fake_config(write_config(tmp_path / "c.yaml", run_copy, **SMALL))
    assert run_attack(config, progress=False, factories=FAKES) == 0  # records this config file as the source
    before = _tensors(run_copy)
    for path in _adv_files(run_copy)[:3]:
        path.unlink()
    real_fsync = os.fsync

    def full(fd: int) -> None:
        real_fsync(fd)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", full)
    assert report_errors("attack", lambda: run_attack(config, progress=False, factories=FAKES)) == 1
    line = _one_line(capsys.readouterr().err)
    assert cause.lower() in line.lower() and str(run_copy) in line and ".safetensors" in line
    monkeypatch.undo()
    assert not [p for p in run_copy.rglob("*") if p.name.endswith(TEMP_SUFFIX)]
    assert run_attack(config, progress=False, factories=FAKES) == 0
    assert _tensors(run_copy) == before  # the resumed run equals the uninterrupted one


def test_file_size_limit_names_the_file(tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "c.yaml", tmp_path / "out", **SMALL)
    selection = _worker(str(config_path))  # run once to know the size of a clip file
    assert selection.returncode == 0, selection.stderr
    size = min(p.stat().st_size for p in _adv_files(tmp_path / "out"))
    shutil.rmtree(tmp_path / "out" / "adv")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    result = _worker(str(config_path), "--cli", preexec=limit)
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "File too large" in line and ".safetensors" in line and str(tmp_path / "out") in line
    assert _adv_files(tmp_path / "out") == []  # nothing truncated left behind


def _read_only(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The worker with `folder` read-only: a read-only bind mount in a private mount namespace (root), or
    chmod (other users)."""
    if os.geteuid() == 0:
        if shutil.which("unshare") is None or shutil.which("mount") is None:
            pytest.skip("needs unshare and mount to make a read-only folder as root")
        probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip("cannot create a mount namespace here")
        script = (
            f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && '
            f'exec "{sys.executable}" "{WORKER}" "$@"'
        )
        return subprocess.run(
            ["unshare", "-m", "sh", "-c", script, "sh", *args],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    for path in modes:
        path.chmod(modes[path] & ~0o222)
    try:
        return _worker(*args)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def test_a_finished_read_only_run_resumes_with_nothing_to_do(run_copy: Path, tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "c.yaml", run_copy, **SMALL)
    assert _worker(str(config_path)).returncode == 0  # written once by this config file (its path)
    before = _snapshot(run_copy)
    result = _read_only(run_copy, str(config_path), "--cli")
    assert result.returncode == 0, result.stderr
    assert "adversarial clips (complete)" in result.stdout
    assert _snapshot(run_copy) == before


def test_evaluating_a_read_only_run_is_one_line(run_copy: Path) -> None:
    result = _read_only(run_copy, "--evaluate", str(run_copy), "--cli")
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert str(run_copy / "eval") in line and ("Read-only file system" in line or "Permission denied" in line)


def test_a_read_only_output_parent_is_one_line(tmp_path: Path) -> None:
    parent = tmp_path / "shared"
    parent.mkdir()
    config_path = write_config(tmp_path / "c.yaml", parent / "out", **SMALL)
    result = _read_only(parent, str(config_path), "--cli")
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert str(parent / "out") in line and ("Read-only file system" in line or "Permission denied" in line)


def test_atomic_write_errors_name_the_destination(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def too_large(fd: int) -> None:
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(os, "fsync", too_large)
    with pytest.raises(OSError, match="File too large") as info:
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert info.value.errno == errno.EFBIG and info.value.filename == str(tmp_path / "x.bin")


# ------------------------------------------------------------------------------------------------
# Dataset items
# ------------------------------------------------------------------------------------------------


def test_a_pixel_just_over_1_is_named_with_its_value_clip_id_and_place(tmp_path: Path) -> None:
    class OverExposed(FakeDataset):
        def clip(self, index: int) -> torch.Tensor:
            clip = super().clip(index)
            if index == 2:
                clip[0, 1, 2, 3] = 1 + 1e-6
            return clip

    config = load_fake_config(write_config(tmp_path / "c.yaml", tmp_path / "out", **SMALL))
    factories = dataclasses.replace(FAKES, build_dataset=OverExposed)
    message = (
        r"dataset item 2 \('class2/clip 002\.mp4'\): pixel value 1\.000001 at \(c, t, h, w\) = \(0, 1, 2, 3\)"
    )
    with pytest.raises(ValueError, match=message):
        run_attack(config, progress=False, factories=factories)


def test_a_nan_gradient_stops_the_run_naming_the_clip_id_and_step(tmp_path: Path) -> None:
    class NanUnderGradient(torch.nn.Module):
        """Fine for selection (no_grad), NaN logits whenever the attack takes a gradient."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = self.inner(x)
            return logits * float("nan") if torch.is_grad_enabled() else logits

    def nan_models(spec: Any, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
        return NanUnderGradient(model_factory(spec, device, dtype))

    overrides = {**SMALL, "attacks": [{"name": "BIM", "spec": "bim"}]}
    config = load_fake_config(write_config(tmp_path / "c.yaml", tmp_path / "out", **overrides))
    factories = dataclasses.replace(FAKES, load_model=nan_models, build_attack=default_attack_factory)
    message = (
        r"attack 'BIM' on white-box model 'A', clip 'class\d/clip 00\d\.mp4' \(dataset index \d\), "
        r"'class\d/clip 00\d\.mp4' .*non-finite loss or gradient for clip 0, 1 \(index in the batch\) "
        r"at step 1 of 2"
    )
    with pytest.raises(ValueError, match=message):
        run_attack(config, progress=False, factories=factories)
    assert _adv_files(tmp_path / "out") == []


def test_a_clean_clip_that_cannot_be_loaded_falls_back_to_the_recorded_distance(
    run_copy: Path, capsys
) -> None:
    class Gone(FakeDataset):
        def __getitem__(self, index: int) -> Any:
            raise FileNotFoundError(f"video file not found: /data/clip{index}.mp4")

    assert _evaluate(run_copy, dataset_factory=Gone) == 0
    err = capsys.readouterr().err
    assert err.count("cannot load clean clip") == 1 and "recorded, checksummed distance" in err
