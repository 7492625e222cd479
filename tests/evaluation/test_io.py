"""Atomic writes: complete files or the old file, never a truncated one; safetensors round trips."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from vidadv.utils.io import (
    TEMP_SUFFIX,
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    load_tensor_metadata,
    load_tensors,
    remove_stale_temporaries,
)


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


def test_writes_round_trip_and_leave_no_temporaries(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01payload")
    atomic_write_text(tmp_path / "t.txt", "h\u00e9llo\n")
    atomic_write_json(tmp_path / "j.json", {"x": [1, 2.5, None], "y": "z"})
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01payload"
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "h\u00e9llo\n"
    assert json.loads((tmp_path / "j.json").read_text()) == {"x": [1, 2.5, None], "y": "z"}
    assert _temporaries(tmp_path) == []


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "result.json"
    atomic_write_json(target, {"version": 1})

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(target, {"version": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"version": 1}
    assert _temporaries(tmp_path) == []


def test_tensors_round_trip_bit_exactly_with_metadata(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    clip = torch.rand(3, 4, 5, 6, generator=generator)
    tensors = {"adv": clip.transpose(1, 2), "half": clip.half()}  # a non-contiguous view, too
    path = atomic_save_tensors(tmp_path / "clip.safetensors", tensors, {"record": '{"a": 1}'})
    loaded = load_tensors(path)
    assert set(loaded) == {"adv", "half"}
    assert torch.equal(loaded["adv"], clip.transpose(1, 2))
    assert loaded["half"].dtype == torch.float16 and torch.equal(loaded["half"], clip.half())
    assert load_tensor_metadata(path) == {"record": '{"a": 1}'}


def test_truncated_tensor_file_is_a_clear_error(tmp_path: Path) -> None:
    path = atomic_save_tensors(tmp_path / "clip.safetensors", {"adv": torch.zeros(3, 8, 16, 16)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="clip.safetensors"):
        load_tensors(path)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_tensors(tmp_path / "nope.safetensors")


def test_remove_stale_temporaries_only_touches_temporaries(tmp_path: Path) -> None:
    keep = atomic_write_text(tmp_path / "sub" / "keep.txt", "x")
    stale = tmp_path / "sub" / f".keep.txt.abc{TEMP_SUFFIX}"
    stale.write_text("half")
    assert remove_stale_temporaries(tmp_path) == 1
    assert keep.exists() and not stale.exists()


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="bytes"):
        atomic_write_bytes(tmp_path / "x", "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON"):
        atomic_write_json(tmp_path / "x.json", {"asr": float("nan")})
    with pytest.raises(ValueError, match="non-empty"):
        atomic_save_tensors(tmp_path / "x.safetensors", {})
    with pytest.raises(TypeError, match="not a torch.Tensor"):
        atomic_save_tensors(tmp_path / "x.safetensors", {"a": [1, 2]})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="directory"):
        atomic_write_bytes(tmp_path, b"x")
    assert not (tmp_path / "x.json").exists()


def test_a_crash_while_writing_leaves_no_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "clip.safetensors"

    def crash(fd: int) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="power cut"):
        atomic_save_tensors(target, {"adv": torch.ones(3, 8, 16, 16)})
    monkeypatch.undo()
    assert not target.exists() and _temporaries(tmp_path) == []


def test_written_files_get_the_mode_open_would_give(tmp_path: Path) -> None:
    """Atomic writes go through mkstemp (0600); the result must be readable as a plain open() would make
    it (0666 less the umask), so a report folder can be served or shared."""
    umask = os.umask(0)
    os.umask(umask)
    path = atomic_write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
