"""`vidadv attack-video`: attack one real video file with any loadable model and show what happened.

Steps: decode the video with PyAV, sample the model's frames (a window of `frames` frames every `stride`
decoded frames; by default centered in the video), resize the short side and center crop as the model
expects, attack (untargeted against the clean top-1 class, or towards `--target`), then write into the
output folder:

- ``adversarial.safetensors``: the clean and adversarial clips (float32 (C, T, H, W) in [0, 1], lossless)
  and the sampled frame indices;
- ``adversarial.mp4``: the adversarial clip as H.264 (CRF `crf`) at the input's frame rate; lossy encoding
  weakens the perturbation, so the white-box top-1 after re-decoding the file is reported too;
- ``side_by_side.mp4``: clean | adversarial | amplified perturbation (grey = unchanged, 0.5 + delta / 2 eps);
- ``result.json``: settings, frame rule, top-5 before/after per model, L-inf, PSNR, timing.

Every input is checked before any work, the outputs go to a temporary sibling folder renamed to `out` at
the end, so a failed run leaves nothing half-written.

Evaluation models (``--eval-model NAME[=CHECKPOINT]``) see the same sampled frames, resized to their own
input size (transfer across resolutions is part of what they test).
"""

from __future__ import annotations

import difflib
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from pydantic_core import PydanticCustomError
from torch import nn

from vidadv.attacks import build_attack
from vidadv.data import (
    SpatialTransform,
    count_frames,
    kinetics400_class_names,
    read_video_frames,
    resize_clip,
    strided_window_indices,
    ucf101_class_names,
    video_frame_rate,
    write_video,
)
from vidadv.experiments.schema import parse_budget as config_budget
from vidadv.models import available_models, get_model_entry, load_model
from vidadv.models.wrapper import VideoClassifier
from vidadv.utils.io import atomic_save_tensors, atomic_write_json

__all__ = [
    "ModelInput",
    "SampledClip",
    "class_names_for",
    "model_input",
    "parse_budget",
    "psnr",
    "resolve_target",
    "run_attack_video",
    "sample_clip",
    "top_k",
]

DEFAULT_CRF = 18
_LARGE_INPUT = 112  # crop size from which the attack evaluates one clip copy per pass by default
_SMALL_VIDEO = 128  # side-by-side videos of clips smaller than this are enlarged (nearest neighbour)


@dataclass(frozen=True)
class ModelInput:
    """What a model expects: `frames` frames every `stride` decoded frames, short side, center crop."""

    frames: int
    stride: int
    short_side: int
    crop_size: int
    origin: str  # where the rule comes from, shown in the output


def model_input(name: str) -> ModelInput:
    """The clip rule of model `name`, from its catalogue entry: `frames` frames every `frame_stride`
    decoded frames, short side `short_side`, center crop `input_size`."""
    entry = get_model_entry(name)
    short_side = entry.short_side or entry.input_size
    return ModelInput(
        entry.frames,
        entry.frame_stride,
        short_side,
        entry.input_size,
        f"{entry.name} catalogue entry: {entry.frames} frames every {entry.frame_stride}, "
        f"short side {short_side}, center crop {entry.input_size}",
    )


def class_names_for(name: str, model: VideoClassifier) -> list[str]:
    """Class names of a loaded model: its catalogue entry's, else Kinetics-400 (400 logits), UCF-101
    (101 logits), else ``class_0 ...``."""
    count = int(model.num_classes or 0)
    names = list(getattr(model, "class_names", None) or get_model_entry(name).class_names or ())
    if len(names) != count:
        if count == 400:
            names = kinetics400_class_names()
        elif count == 101:
            names = ucf101_class_names()
        else:
            names = [f"class_{index}" for index in range(count)]
    return names


def parse_budget(value: str | float, what: str = "--eps") -> float:
    """A number in (0, 1] given as a float or a fraction string such as "8/255" (the config's `eps` rule)."""
    try:
        return config_budget(value)
    except PydanticCustomError as err:
        raise ValueError(f"{what}{(err.context or {}).get('message', str(err))}") from None


def _normalize_name(text: str) -> str:
    return " ".join(text.strip().lower().replace("_", " ").split())


def resolve_target(target: str | int, class_names: Sequence[str], model_name: str) -> int:
    """Class index of `target` (a class name, spaces/underscores alike, or an index)."""
    text = str(target).strip()
    if text.isdigit():
        index = int(text)
        if index >= len(class_names):
            raise ValueError(f"--target {index} is out of range: {model_name} has {len(class_names)} classes")
        return index
    wanted = _normalize_name(text)
    for index, name in enumerate(class_names):
        if _normalize_name(name) == wanted:
            return index
    close = difflib.get_close_matches(wanted, [_normalize_name(n) for n in class_names], n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"--target {text!r} is not a class of {model_name} ({len(class_names)} classes){hint}")


@dataclass(frozen=True)
class SampledClip:
    """A clip (C, T, H, W) in [0, 1] sampled from a video, with how it was sampled."""

    clip: torch.Tensor
    indices: list[int]
    num_frames: int
    fps: Fraction
    fps_known: bool
    rule: str


def sample_clip(
    path: str | os.PathLike,
    spec: ModelInput,
    frames: int | None = None,
    stride: int | None = None,
    start: int | None = None,
) -> SampledClip:
    """Decode `frames` frames every `stride` of the video (window centered unless `start` is given),
    resize the short side to `spec.short_side` and center crop `spec.crop_size`."""
    frames = spec.frames if frames is None else frames
    stride = spec.stride if stride is None else stride
    for value, flag in ((frames, "--frames"), (stride, "--stride")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{flag} must be a positive integer, got {value!r}")
    num_frames = count_frames(path)
    span = (frames - 1) * stride + 1
    if num_frames < span:
        raise ValueError(
            f"{path}: the video has {num_frames} frames but the clip needs {span} ({frames} frames"
            f"{'' if stride == 1 else f', stride {stride}'}); use fewer --frames or a smaller --stride"
        )
    placement = "given start"
    if start is None:
        start = (num_frames - span) // 2
        placement = "centered window"
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= num_frames - span:
        raise ValueError(
            f"--start must be between 0 and {num_frames - span} for {frames} frames every {stride} of a "
            f"{num_frames}-frame video, got {start!r}"
        )
    indices = strided_window_indices(num_frames, start, frames, stride, short_video="error")
    rate = video_frame_rate(path)
    fps_known = rate is not None
    fps = rate if rate is not None else Fraction(25)
    decoded = read_video_frames(path, indices)
    height, width = int(decoded.shape[1]), int(decoded.shape[2])
    clip = SpatialTransform(short_side=spec.short_side, crop_size=spec.crop_size)(decoded)
    taken = "consecutive frames" if stride == 1 else f"frames at stride {stride}"
    rule = (
        f"{frames} {taken} ({placement}): frames "
        f"{indices[0]}..{indices[-1]} of {num_frames} at {float(fps):.3g} fps"
        f"{'' if fps_known else ' (rate not stated by the file; 25 assumed)'}; {width}x{height} resized to "
        f"short side {spec.short_side}, center crop {spec.crop_size}x{spec.crop_size} [{spec.origin}]"
    )
    return SampledClip(clip, indices, num_frames, fps, fps_known, rule)


def top_k(model: nn.Module, clip: torch.Tensor, k: int = 5) -> list[tuple[int, float]]:
    """(class index, probability) of the k most probable classes for one clip (C, T, H, W)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad():
        probabilities = model(clip.unsqueeze(0).to(device)).float().softmax(dim=1)[0].cpu()
    values, indices = probabilities.topk(min(k, probabilities.numel()))
    return [(int(i), float(v)) for i, v in zip(indices, values, strict=True)]


def psnr(clean: torch.Tensor, adversarial: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for [0, 1] clips (inf when identical)."""
    mse = float((adversarial.double() - clean.double()).pow(2).mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def _for_model(clip: torch.Tensor, spec: ModelInput) -> torch.Tensor:
    """The white-box clip resized to another model's input size (same frames)."""
    if tuple(clip.shape[-2:]) == (spec.crop_size, spec.crop_size):
        return clip
    return resize_clip(clip, (spec.crop_size, spec.crop_size)).clamp(0.0, 1.0)


def _parse_model_argument(text: str) -> tuple[str, str | None]:
    name, _, checkpoint = text.partition("=")
    return name.strip(), (checkpoint.strip() or None)


def _check_name(name: str, flag: str) -> None:
    if name not in available_models():
        raise ValueError(f"{flag} {name!r} is not a model vidadv can load; see `vidadv models`")


def _load(name: str, checkpoint: str | None, device: str, flag: str) -> VideoClassifier:
    _check_name(name, flag)
    if get_model_entry(name).weights is None and checkpoint is None:  # no shipped weights
        raise ValueError(
            f"{flag} {name!r} needs its weights: give a checkpoint "
            f"({'--checkpoint PATH' if flag == '--model' else 'NAME=CHECKPOINT'})"
        )
    return load_model(name, checkpoint=checkpoint, device=device)


def _check_out(out: str | os.PathLike) -> Path:
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {str(folder)!r} exists and is a file; give a new folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise ValueError(f"--out {str(folder)!r} exists and is not empty; give a new or empty folder")
    if not folder.parent.exists():
        raise ValueError(f"--out {str(folder)!r}: the parent folder {str(folder.parent)!r} does not exist")
    return folder


def _side_by_side(clean: torch.Tensor, adversarial: torch.Tensor, eps: float) -> torch.Tensor:
    """clean | adversarial | 0.5 + delta / (2 eps), side by side (C, T, H, 3W)."""
    amplified = (0.5 + (adversarial - clean) / (2.0 * eps)).clamp(0.0, 1.0)
    panel = torch.cat([clean, adversarial, amplified], dim=-1)
    height = panel.shape[-2]
    if height < _SMALL_VIDEO:
        factor = math.ceil(_SMALL_VIDEO / height)
        panel = panel.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    return panel


def _rows(names: Sequence[str], ranking: Sequence[tuple[int, float]]) -> list[dict[str, Any]]:
    return [{"class": names[i], "index": i, "probability": round(p, 6)} for i, p in ranking]


def _format_table(title: str, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    width = max(12, *(len(row["class"]) for row in before + after)) + 8
    lines = [title, f"  {'#':<3}{'clean':<{width}}{'adversarial':<{width}}"]
    for rank, (a, b) in enumerate(zip(before, after, strict=True), start=1):
        left = f"{a['class']} {a['probability']:.3f}"
        right = f"{b['class']} {b['probability']:.3f}"
        lines.append(f"  {rank:<3}{left:<{width}}{right:<{width}}")
    return "\n".join(lines)


def run_attack_video(
    input_path: str | os.PathLike,
    model: str,
    attack: str,
    out: str | os.PathLike,
    *,
    checkpoint: str | None = None,
    eps: str | float = "8/255",
    steps: int | None = None,
    frames: int | None = None,
    stride: int | None = None,
    start: int | None = None,
    eval_models: Sequence[str] = (),
    target: str | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
    crf: int = DEFAULT_CRF,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Attack one video file; write the outputs listed in the module doc to `out`; return result.json."""
    started = time.time()
    out_dir = _check_out(out)
    budget = parse_budget(eps)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"--steps must be a positive integer, got {steps!r}")
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise ValueError(f"--crf must be an integer in [0, 51], got {crf!r}")
    spec = model_input(model)
    if chunk_size is None and spec.crop_size >= _LARGE_INPUT:
        chunk_size = 1  # full-size models: one clip copy per pass keeps memory at a few GB
    options: dict[str, Any] = {"eps": budget, "seed": seed, "chunk_size": chunk_size, "progress": progress}
    if steps is not None:
        options["steps"] = steps
    evaluated = [_parse_model_argument(text) for text in eval_models]

    # Everything that can be refused is checked before the (long) attack.
    for name, flag in [(model, "--model")] + [(name, "--eval-model") for name, _ in evaluated]:
        _check_name(name, flag)
    sampled = sample_clip(input_path, spec, frames, stride, start)
    whitebox = _load(model, checkpoint, device, "--model")
    names = class_names_for(model, whitebox)
    target_index = None if target is None else resolve_target(target, names, model)
    others = [(name, _load(name, path, device, "--eval-model")) for name, path in evaluated]
    if target_index is not None:
        options["targeted"] = True
    attacker = build_attack(attack, whitebox, **options)  # validates the spec and its options
    clean = sampled.clip.to(device)
    whitebox.check_clip(clean.unsqueeze(0))

    clean_top = top_k(whitebox, clean)
    label = clean_top[0][0]
    print(f"input: {input_path}\nframes: {sampled.rule}")
    print(
        f"attack: {attacker.spec} on {model}, eps {budget * 255:.4g}/255, {attacker.steps} step(s), "
        + (
            f"targeted at {names[target_index]!r}"
            if target_index is not None
            else f"untargeted (away from the clean top-1 {names[label]!r})"
        )
    )
    tick = time.process_time()
    wall = time.time()
    adversarial = attacker(
        clean.unsqueeze(0),
        torch.tensor([label], device=clean.device),
        None if target_index is None else torch.tensor([target_index], device=clean.device),
    )[0]
    attack_cpu, attack_wall = time.process_time() - tick, time.time() - wall
    delta = adversarial - clean
    adversarial_top = top_k(whitebox, adversarial)

    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        atomic_save_tensors(
            staging / "adversarial.safetensors",
            {
                "clean": clean.cpu(),
                "adversarial": adversarial.cpu(),
                "frame_indices": torch.tensor(sampled.indices, dtype=torch.int64),
            },
            metadata={"model": model, "attack": attacker.spec, "eps": repr(budget), "input": str(input_path)},
        )
        mp4_path = write_video(staging / "adversarial.mp4", adversarial.cpu(), fps=sampled.fps, crf=crf)
        redecoded = read_video_frames(mp4_path)[:, : clean.shape[-2], : clean.shape[-1]]
        redecoded_clip = redecoded.permute(3, 0, 1, 2).float().div(255.0).to(device)
        if redecoded_clip.shape != clean.shape:
            raise RuntimeError(f"re-decoded {tuple(redecoded_clip.shape)} differs from {tuple(clean.shape)}")
        mp4_top = top_k(whitebox, redecoded_clip)
        write_video(
            staging / "side_by_side.mp4",
            _side_by_side(clean.cpu(), adversarial.cpu(), budget),
            fps=sampled.fps,
        )

        models = [
            {
                "model": model,
                "role": "white-box",
                "clean_top5": _rows(names, clean_top),
                "adversarial_top5": _rows(names, adversarial_top),
                "mp4_top1": _rows(names, mp4_top[:1])[0],
            }
        ]
        for name, other in others:
            other_names = class_names_for(name, other)
            other_spec = model_input(name)
            models.append(
                {
                    "model": name,
                    "role": "evaluation",
                    "input_size": other_spec.crop_size,
                    "clean_top5": _rows(other_names, top_k(other, _for_model(clean, other_spec))),
                    "adversarial_top5": _rows(other_names, top_k(other, _for_model(adversarial, other_spec))),
                    "mp4_top1": _rows(other_names, top_k(other, _for_model(redecoded_clip, other_spec), 1))[
                        0
                    ],
                }
            )
        result = {
            "input": str(input_path),
            "frames": {
                "rule": sampled.rule,
                "indices": sampled.indices,
                "video_frames": sampled.num_frames,
                "fps": float(sampled.fps),
                "fps_stated_by_file": sampled.fps_known,
                "clip_shape": list(clean.shape),
            },
            "attack": {
                "spec": attacker.spec,
                "eps": budget,
                "steps": attacker.steps,
                "step_size": attacker.step_size,
                "targeted": target_index is not None,
                "label": {
                    "index": label,
                    "class": names[label],
                    "source": "clean top-1 of the white-box model",
                },
                "target": None
                if target_index is None
                else {"index": target_index, "class": names[target_index]},
                "seed": seed,
                "cpu_seconds": round(attack_cpu, 3),
                "wall_seconds": round(attack_wall, 3),
                "device": str(device),
            },
            "perturbation": {
                "linf": float(delta.abs().max()),
                "linf_255": float(delta.abs().max()) * 255.0,
                "psnr_db": psnr(clean, adversarial),
            },
            "mp4": {
                "file": "adversarial.mp4",
                "codec": "H.264 (libx264, yuv420p)",
                "crf": crf,
                "note": "lossy: it weakens the perturbation; mp4_top1 = prediction on the re-decoded file",
                "linf_vs_float": float((redecoded_clip - adversarial).abs().max()),
            },
            "models": models,
            "files": ["adversarial.safetensors", "adversarial.mp4", "side_by_side.mp4", "result.json"],
        }
        atomic_write_json(staging / "result.json", _json_safe(result))
        if out_dir.is_dir():
            out_dir.rmdir()  # checked empty above
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    print()
    for entry in models:
        changed = entry["clean_top5"][0]["index"] != entry["adversarial_top5"][0]["index"]
        title = f"{entry['model']} ({entry['role']}): top-1 {'changed' if changed else 'unchanged'}"
        print(_format_table(title, entry["clean_top5"], entry["adversarial_top5"]))
        mp4 = entry["mp4_top1"]
        print(f"  after H.264 (CRF {crf}) re-decoding: top-1 {mp4['class']} {mp4['probability']:.3f}\n")
    print(
        f"L-inf {result['perturbation']['linf_255']:.2f}/255, "
        f"PSNR {result['perturbation']['psnr_db']:.2f} dB; "
        f"attack {attack_cpu:.1f} s CPU ({attack_wall:.1f} s wall)"
    )
    print(
        f"note: {out_dir / 'adversarial.mp4'} is lossy H.264, which weakens the perturbation; the lossless "
        f"clip is {out_dir / 'adversarial.safetensors'}"
    )
    print(
        f"wrote {out_dir}/ (adversarial.safetensors, adversarial.mp4, side_by_side.mp4, result.json) in "
        f"{time.time() - started:.0f} s"
    )
    return result


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
