"""Kinetics-400 / UCF-101 / CSV datasets on tiny self-written data, the factory and the shipped lists."""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from tests.data.video_helpers import frame_numbers, write_indexed_folder, write_indexed_video
from vidadv.data import (
    ClipRef,
    CsvClipDataset,
    Kinetics400Clips,
    UCF101Clips,
    VideoDecodeError,
    build_dataset,
    dataset_spec_keys,
    kinetics400_attack_list,
    make_clip_id,
    read_clip_csv,
    ucf101_attack_list,
)
from vidadv.protocol import (
    kinetics400_class_names,
    read_protocol_text,
    ucf101_attack_indices,
    ucf101_class_names,
    ucf101_test01_rows,
)

# ---------------------------------------------------------------- Kinetics-400


@pytest.fixture(scope="module")
def kinetics_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("k400")
    write_indexed_video(root / "air drumming" / "long.mp4", 80)
    write_indexed_video(root / "abseiling" / "short.mp4", 20)
    (root / "abseiling" / "corrupt.mp4").write_bytes(b"\x00\x01garbage" * 300)
    return root


def test_kinetics_paper_defaults_last_window(kinetics_root):
    dataset = Kinetics400Clips(kinetics_root, [ClipRef("air drumming/long.mp4", 1, clip_index=-1)])
    clip, label, clip_id = dataset[0]
    assert clip.shape == (3, 32, 224, 224) and clip.dtype == torch.float32
    assert 0 <= float(clip.min()) and float(clip.max()) <= 1
    assert label == 1 and clip_id == make_clip_id("air drumming/long.mp4", -1)
    n = 80  # TT code: floor(linspace(n-65, n-1, 32)), last clipped to n-2
    assert frame_numbers(clip) == [n - 65 + 2 * k for k in range(16)] + [
        n - 64 + 2 * k for k in range(16, 31)
    ] + [78]


def test_kinetics_small_config_and_strided_rule(kinetics_root):
    refs = [
        ClipRef("air drumming/long.mp4", 1, clip_index=-1),
        ClipRef("abseiling/short.mp4", 0, clip_index=-1),
    ]
    dataset = Kinetics400Clips(kinetics_root, refs, frames=8, stride=2, size=32, sampling="strided")
    clip, _, _ = dataset[0]
    assert clip.shape == (3, 8, 32, 32)
    assert frame_numbers(clip) == list(range(64, 80, 2))  # the last 16 frames, every other one
    # 20 frames >= 16: also the last window
    assert frame_numbers(dataset[1][0]) == list(range(4, 20, 2))
    tt = Kinetics400Clips(kinetics_root, refs[1:], frames=32, stride=2, size=32)
    # short video under the TT rule: floor(linspace(0, 20, 10)) then the last frame repeated
    assert frame_numbers(tt[0][0]) == [0, 2, 4, 6, 8, 11, 13, 15, 17, 19] + [19] * 22


def test_kinetics_seeded_clip_index(kinetics_root):
    import numpy as np

    dataset = Kinetics400Clips(
        kinetics_root, [ClipRef("air drumming/long.mp4", 1, clip_index=9)], frames=8, size=32
    )
    np.random.seed(9)  # the paper's loader: window end drawn by the legacy global generator
    end = np.random.randint(16, 80)
    expected = np.clip(np.linspace(end - 16, end, 8), end - 16, end - 1).astype(int).tolist()
    assert frame_numbers(dataset[0][0]) == expected


def test_kinetics_underscored_folder_fallback(tmp_path):
    write_indexed_video(tmp_path / "air_drumming" / "v.mp4", 10)
    dataset = Kinetics400Clips(tmp_path, [ClipRef("air drumming/v.mp4", 1, -1)], frames=4, stride=2, size=16)
    # TT rule, span 8 < 10 frames: floor(linspace(1, 9, 4)) = 1, 3, 6, 9 -> last clipped to 8
    assert frame_numbers(dataset[0][0]) == [1, 3, 6, 8]


def test_kinetics_errors(kinetics_root):
    missing = Kinetics400Clips(kinetics_root, [ClipRef("abseiling/nope.mp4", 0, -1)], frames=4, size=16)
    with pytest.raises(VideoDecodeError, match=r"not found.*nope\.mp4"):
        missing[0]
    corrupt = Kinetics400Clips(kinetics_root, [ClipRef("abseiling/corrupt.mp4", 0, -1)], frames=4, size=16)
    with pytest.raises(VideoDecodeError, match=r"corrupt\.mp4"):
        corrupt[0]
    with pytest.raises(ValueError, match="outside 0..399"):
        Kinetics400Clips(kinetics_root, [ClipRef("a.mp4", 400, -1)])
    with pytest.raises(ValueError, match="sampling"):
        Kinetics400Clips(kinetics_root, sampling="random")


def test_kinetics_default_list_is_the_paper_list(tmp_path):
    dataset = Kinetics400Clips(tmp_path)
    assert len(dataset) == 400
    assert dataset.refs[0].full_path == tmp_path / "abseiling" / "YqTT34PsD5c_000003_000013.mp4"
    assert dataset.class_names[1] == "air drumming"
    assert len(Kinetics400Clips(tmp_path, limit=5)) == 5


# ---------------------------------------------------------------- UCF-101


@pytest.fixture(scope="module")
def ucf_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ucf")
    write_indexed_folder(root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01", 40)
    write_indexed_folder(root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c02", 20)
    write_indexed_folder(root / "v_Archery_g01_c01", 36)  # the paper's flat layout
    write_indexed_video(
        root / "Basketball" / "v_Basketball_g01_c01.avi", 40, codec="mpeg4", crf=None, options={"qmax": "2"}
    )
    (root / "Empty" / "v_Empty_g01_c01").mkdir(parents=True)
    return root


def test_ucf_paper_rule_frame_folders(ucf_root):
    refs = [
        ClipRef("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", 0),
        ClipRef("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02", 0),
        ClipRef("Archery/v_Archery_g01_c01", 2),
    ]
    clip, label, clip_id = UCF101Clips(ucf_root, refs[:1])[0]  # paper defaults
    assert clip.shape == (3, 32, 224, 224) and label == 0 and clip_id == refs[0].clip_id
    assert frame_numbers(clip) == list(range(2, 34))  # image numbers 2..33
    dataset = UCF101Clips(ucf_root, refs, size=32)
    # 20 images: 2..20 then loop from image 2
    assert frame_numbers(dataset[1][0]) == list(range(2, 21)) + list(range(2, 15))
    assert frame_numbers(dataset[2][0]) == list(range(2, 34))


def test_ucf_avi_uses_the_same_rule(ucf_root):
    dataset = UCF101Clips(ucf_root, [ClipRef("Basketball/v_Basketball_g01_c01", 7)], size=32, source="video")
    clip, label, _ = dataset[0]
    assert clip.shape == (3, 32, 32, 32) and label == 7
    # decoded frame k holds number k; the clip is frames 1..32 (= images 2..33 of an extraction)
    assert frame_numbers(clip) == list(range(1, 33))
    small = UCF101Clips(
        ucf_root, [ClipRef("Basketball/v_Basketball_g01_c01", 7)], frames=4, stride=3, start=0, size=16
    )
    assert frame_numbers(small[0][0]) == [0, 3, 6, 9]


def test_ucf_errors(ucf_root):
    with pytest.raises(VideoDecodeError, match="no frames found"):
        UCF101Clips(ucf_root, [ClipRef("Empty/v_Empty_g01_c01", 0)], size=16)[0]
    with pytest.raises(VideoDecodeError, match=r"not found.*v_Nope_g01_c01\.avi"):
        UCF101Clips(ucf_root, [ClipRef("Nope/v_Nope_g01_c01", 0)], size=16)[0]
    with pytest.raises(ValueError, match="source"):
        UCF101Clips(ucf_root, source="jpg")


def test_ucf_default_list_and_indices(tmp_path):
    dataset = UCF101Clips(tmp_path)
    assert len(dataset) == 101
    rows = ucf101_test01_rows()
    assert dataset.refs[0].path == rows[ucf101_attack_indices()[0]]["path"]
    picked = UCF101Clips(tmp_path, indices=[0, 5])
    assert [ref.path for ref in picked.refs] == [rows[0]["path"], rows[5]["path"]]
    index_file = tmp_path / "idx.json"
    index_file.write_text(json.dumps([3]))
    assert UCF101Clips(tmp_path, indices=index_file).refs[0].path == rows[3]["path"]
    with pytest.raises(ValueError, match="outside"):
        UCF101Clips(tmp_path, indices=[10**6])


# ---------------------------------------------------------------- CSV dataset and factory


@pytest.fixture()
def csv_list(tmp_path, kinetics_root, ucf_root) -> Path:
    path = tmp_path / "clips.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "start_frame", "clip_index"])
        writer.writerow([str(kinetics_root / "air drumming" / "long.mp4"), 3, 5, ""])
        writer.writerow([str(ucf_root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01"), 1, "", ""])
        writer.writerow([str(kinetics_root / "air drumming" / "long.mp4"), 2, "", -1])
        writer.writerow([str(kinetics_root / "air drumming" / "long.mp4"), 2, -4, ""])
    return path


def test_csv_dataset_windows(csv_list):
    dataset = CsvClipDataset(csv_list, frames=4, stride=3, size=24)
    assert len(dataset) == 4
    clip, label, _ = dataset[0]
    assert clip.shape == (3, 4, 24, 24) and label == 3
    assert frame_numbers(clip) == [5, 8, 11, 14]
    # folder, centred window: 40 frames, span 10 -> start (40 - 10) // 2 = 15 -> images 16, 19, 22, 25
    assert frame_numbers(dataset[1][0]) == [16, 19, 22, 25]
    # clip_index -1: TT rule with span 12 on 80 frames: floor(linspace(67, 79, 4)) = 67, 71, 75, 79 -> 78
    assert frame_numbers(dataset[2][0]) == [67, 71, 75, 78]
    # start -4 counts from the end, then loops: 76, 79, (82 -> loop) 76, 79
    assert frame_numbers(dataset[3][0]) == [76, 79, 76, 79]
    ids = [dataset[i][2] for i in range(4)]
    assert len(set(ids)) == 4


def test_csv_short_video_error_and_bad_csv(tmp_path, csv_list):
    strict = CsvClipDataset(csv_list, frames=4, stride=3, size=24, short_video="error")
    with pytest.raises(VideoDecodeError, match=r"too few frames.*long\.mp4"):
        strict[3]
    bad = tmp_path / "bad.csv"
    bad.write_text("video,label\nx.mp4,1\n")
    with pytest.raises(ValueError, match="'path' column"):
        read_clip_csv(bad)
    bad.write_text("path,label\nx.mp4,one\n")
    with pytest.raises(ValueError, match=r"bad\.csv:2.*integer"):
        read_clip_csv(bad)
    bad.write_text("path,label\nx.mp4,1\nx.mp4,2\n")
    with pytest.raises(ValueError, match="unique"):
        CsvClipDataset(bad)
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 4)  # binary: not UTF-8
    with pytest.raises(ValueError, match=r"garbage\.csv is not a readable CSV clip list"):
        read_clip_csv(garbage)
    garbage.write_bytes(b"path,label\nx.mp4,1\x00\x00\n")  # NUL bytes inside a field
    with pytest.raises(ValueError, match=r"garbage\.csv:2"):
        read_clip_csv(garbage)


def test_dataloader_batches(csv_list):
    loader = DataLoader(CsvClipDataset(csv_list, frames=4, stride=3, size=24), batch_size=2)
    clips, labels, ids = next(iter(loader))
    assert clips.shape == (2, 3, 4, 24, 24) and labels.tolist() == [3, 1] and len(ids) == 2


def test_build_dataset(csv_list, kinetics_root):
    dataset = build_dataset({"type": "csv", "list": str(csv_list), "frames": 4, "stride": 3, "size": 24})
    assert frame_numbers(dataset[0][0]) == [5, 8, 11, 14]
    kinetics = build_dataset(
        {"type": "kinetics400", "root": str(kinetics_root), "limit": 3, "decode_size": [40, 50]}
    )
    assert isinstance(kinetics, Kinetics400Clips) and len(kinetics) == 3
    assert isinstance(build_dataset({"type": "ucf101", "root": "/nowhere"}), UCF101Clips)
    with pytest.raises(ValueError, match=r"unknown key.*'frame'.*valid keys.*'frames'"):
        build_dataset({"type": "kinetics400", "root": "/x", "frame": 8})
    with pytest.raises(ValueError, match="type"):
        build_dataset({"type": "hmdb51"})
    with pytest.raises(ValueError, match="needs"):
        build_dataset({"type": "csv"})
    assert "sampling" in dataset_spec_keys("kinetics400")


def test_build_dataset_synthetic_is_lazy(monkeypatch):
    received = {}
    fake = types.ModuleType("vidadv.data.synthetic")

    def build_synthetic_dataset(**kwargs):
        received.update(kwargs)
        return "synthetic-dataset"

    fake.build_synthetic_dataset = build_synthetic_dataset
    monkeypatch.setitem(sys.modules, "vidadv.data.synthetic", fake)
    assert build_dataset({"type": "synthetic", "num_clips": 4, "seed": 1}) == "synthetic-dataset"
    assert received == {"num_clips": 4, "seed": 1}


# ---------------------------------------------------------------- shipped protocol lists and clip ids


def test_kinetics_attack_list():
    refs = kinetics400_attack_list("/data/k400")
    assert len(refs) == 400
    assert sorted(ref.label for ref in refs) == list(range(400))
    assert {ref.clip_index for ref in refs} == {-1, 6, 9}
    names = kinetics400_class_names()
    assert all(ref.path.split("/")[0] == names[ref.label] for ref in refs)
    assert names == sorted(names)  # Kinetics labels are alphabetical
    assert refs[0].full_path == Path("/data/k400/abseiling/YqTT34PsD5c_000003_000013.mp4")


def test_ucf_attack_list():
    refs = ucf101_attack_list()
    assert len(refs) == 101
    assert sorted(ref.label for ref in refs) == list(range(101))
    indices = ucf101_attack_indices()
    num_rows = len(ucf101_test01_rows())
    assert num_rows == 3783 and len(set(indices)) == 101 and all(0 <= i < num_rows for i in indices)
    names = ucf101_class_names()
    assert len(names) == 101 and all(ref.path.split("/")[0] == names[ref.label] for ref in refs)
    assert all(ref.num_frames_hint >= 32 for ref in refs)


@pytest.mark.parametrize(
    "name", ["kinetics400_attack_samples.csv", "ucf101_test01_clips.csv", "ucf101_attack_indices.json"]
)
def test_shipped_lists_match_the_reference(name):
    reference = Path("/work/shared/reference/tt_protocol") / name
    if not reference.exists():
        pytest.skip("reference data not available")
    assert read_protocol_text(name) == reference.read_text(encoding="utf-8")


def test_clip_ids_are_safe_unique_and_stable():
    refs = kinetics400_attack_list() + ucf101_attack_list()
    ids = [ref.clip_id for ref in refs]
    assert len(set(ids)) == len(ids)
    for clip_id in ids:
        assert all(ch.isalnum() or ch in "._-" for ch in clip_id) and not clip_id.startswith(("-", "."))
        assert 0 < len(clip_id) < 160
    # stable across calls and independent of the dataset root
    assert kinetics400_attack_list("/a")[5].clip_id == kinetics400_attack_list("/b")[5].clip_id == ids[5]
    # slugs that collide still get different ids
    assert make_clip_id("a b/c.mp4") != make_clip_id("a_b/c.mp4")
    assert make_clip_id("x.mp4", clip_index=-1) != make_clip_id("x.mp4", clip_index=6)
    assert make_clip_id("x.mp4", start_frame=0) != make_clip_id("x.mp4")
