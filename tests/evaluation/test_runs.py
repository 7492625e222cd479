"""select -> attack -> evaluate -> compare on tiny stand-ins, checked against independent recomputation."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.evaluation.fakes import (
    FAKES,
    CountingModelFactory,
    FakeAttack,
    FakeDataset,
    config_dict,
    load_fake_config,
    model_factory,
    write_config,
)
from vidadv.experiments import run_attack, run_compare, run_evaluate, run_select
from vidadv.experiments.config import ConfigError, ModelSpec
from vidadv.experiments.runtime import RunLayout
from vidadv.utils.io import load_tensor_metadata, load_tensors

EPS = 4 / 255


def _model(name: str) -> torch.nn.Module:
    return model_factory(
        ModelSpec(name, name.upper(), num_classes=3), torch.device("cpu"), torch.float32
    ).eval()


MODELS = {"A": "net-a", "B": "net-b", "C": "net-c"}


def _pred(label: str, clips: torch.Tensor) -> list[int]:
    with torch.no_grad():
        return _model(MODELS[label])(clips).argmax(dim=1).tolist()


def _h264(clip: torch.Tensor) -> torch.Tensor:
    """Encode to H.264 with PyAV directly and decode back (independent of vidadv.data.video)."""
    import io

    import av
    import numpy as np

    frames = (clip.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "23"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return torch.from_numpy(decoded).permute(3, 0, 1, 2).float() / 255


def _blurred_codec(clip: torch.Tensor) -> torch.Tensor:
    """A deterministic lossy 'codec' stand-in: 2x2 spatial box blur, then 8-bit rounding."""
    padded = torch.nn.functional.pad(clip, (0, 1, 0, 1), mode="replicate")  # (C, T, H+1, W+1)
    blurred = torch.nn.functional.avg_pool2d(padded, 2, stride=1)
    return torch.round(blurred * 255) / 255


def test_default_variant_transforms_are_8_bit_rounding_and_an_h264_round_trip() -> None:
    from vidadv.experiments.evaluate import default_transform

    t, y, x = torch.arange(8).view(8, 1, 1), torch.arange(32).view(1, 32, 1), torch.arange(32).view(1, 1, 32)
    smooth = torch.stack(
        [0.5 + 0.3 * torch.sin((x + 2 * t) / 5.0 + c) * torch.cos(y / 7.0) for c in range(3)]
    )
    noise = 0.05 * torch.randn(smooth.shape, generator=torch.Generator().manual_seed(0))
    clip = (smooth + noise).clamp(0, 1).float()
    assert default_transform("float") is None
    assert torch.equal(default_transform("uint8")(clip), torch.round(clip * 255) / 255)
    coded = default_transform("h264-crf23")(clip)
    assert coded.shape == clip.shape and torch.equal(coded, torch.round(coded * 255) / 255)
    error = (coded - clip).abs().mean()
    assert error > 1 / 255  # lossy
    assert (coded - _h264(clip)).abs().mean() < error  # agrees with an independent H.264 encode at CRF 23
    assert (default_transform("h264-crf45")(clip) - clip).abs().mean() > error  # higher CRF, more loss
    with pytest.raises(ValueError, match="unknown evaluation variant"):
        default_transform("jpeg")


def _seed(seed: int, clip_ids: list[str]) -> int:
    digest = hashlib.sha256((f"{seed}\x00" + "\x00".join(clip_ids)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 2**63


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("run")
    config_path = write_config(root / "config.yaml", root / "out")
    config = load_fake_config(config_path)
    assert run_select(config, progress=False, factories=FAKES) == 0
    assert run_attack(config, progress=False, factories=FAKES) == 0
    return {"root": root, "config": config, "layout": RunLayout.of(root / "out")}


def _copy_run(finished_run: dict[str, Any], tmp_path: Path) -> tuple[Any, RunLayout]:
    out = tmp_path / "out"
    shutil.copytree(finished_run["layout"].root, out)
    config_path = write_config(tmp_path / "config.yaml", out)
    return load_fake_config(config_path), RunLayout.of(out)


# ------------------------------------------------------------------------------------------------
# select
# ------------------------------------------------------------------------------------------------


def test_selection_keeps_exactly_the_clips_every_model_gets_right(finished_run: dict[str, Any]) -> None:
    layout: RunLayout = finished_run["layout"]
    selection = json.loads(layout.selection_json.read_text())
    dataset = FakeDataset(config_dict("x")["dataset"])
    expected_kept, expected_reasons = [], {3: "missing file", 7: "decode error"}
    for index in range(12):
        if index in expected_reasons:
            continue
        wrong = [m for m in MODELS if _pred(m, dataset.clip(index)[None])[0] != index % 3]
        if wrong:
            expected_reasons[index] = "misclassified"
        else:
            expected_kept.append(index)
    assert 0 < len(expected_kept) < 10  # the stand-ins make a non-trivial selection
    assert [c["index"] for c in selection["selected"]] == expected_kept
    assert {d["index"]: d["reason"] for d in selection["dropped"]} == expected_reasons
    for dropped in selection["dropped"]:
        if dropped["reason"] == "misclassified":
            for model, pred in dropped["models"].items():
                assert f"{model} (predicted {pred})" in dropped["detail"]
        else:
            assert f"clip{dropped['index']}.mp4" in dropped["detail"]
    rows = list(csv.DictReader(layout.selection_csv.open()))
    assert [int(r["index"]) for r in rows if r["kept"] == "1"] == expected_kept
    assert {int(r["index"]): r["reason"] for r in rows if r["kept"] == "0"} == expected_reasons


def test_select_rerun_is_a_no_op_and_a_changed_dataset_needs_force(finished_run, tmp_path, capsys) -> None:
    config, layout = _copy_run(finished_run, tmp_path)
    before = layout.selection_json.stat().st_mtime_ns
    assert run_select(config, progress=False, factories=FAKES) == 0
    assert layout.selection_json.stat().st_mtime_ns == before
    assert "selection already done" in capsys.readouterr().out
    changed = load_fake_config(
        write_config(tmp_path / "c2.yaml", layout.root, dataset={"name": "fake", "num_clips": 6, "seed": 1})
    )
    with pytest.raises(ConfigError, match="different dataset.*--force"):
        run_select(changed, progress=False, factories=FAKES)
    assert run_select(changed, True, progress=False, factories=FAKES) == 0
    assert json.loads(layout.selection_json.read_text())["num_candidates"] == 6


# ------------------------------------------------------------------------------------------------
# attack
# ------------------------------------------------------------------------------------------------


def test_every_adversarial_clip_equals_an_independent_recomputation(finished_run: dict[str, Any]) -> None:
    layout: RunLayout = finished_run["layout"]
    config = finished_run["config"]
    clips = json.loads(layout.selection_json.read_text())["selected"]
    dataset = FakeDataset(config_dict("x")["dataset"])
    attacks = {"FGSM": ("fgsm", 2), "BIM(3)": ("bim", 3), "RAND": ("rand", 2)}
    files = sorted(layout.adv_dir.rglob("*.safetensors"))
    assert len(files) == 2 * 3 * len(clips)
    for whitebox in ("A", "B"):
        for start in range(0, len(clips), 2):  # batch_size 2: consecutive selected clips
            batch = clips[start : start + 2]
            clean = torch.stack([dataset.clip(c["index"]) for c in batch])
            labels = torch.tensor([c["label"] for c in batch])
            seed = _seed(5, [c["clip_id"] for c in batch])
            for name, (spec, steps) in attacks.items():
                expected = FakeAttack(spec, _model(MODELS[whitebox]), EPS, steps, 2 / 255, seed)(
                    clean, labels
                )
                adv_preds = _pred(whitebox, expected)
                for row, clip in enumerate(batch):
                    path = layout.adv_path(whitebox, name, clip["clip_id"])
                    saved = load_tensors(path)["adv"]
                    assert saved.shape == (3, 8, 16, 16) and saved.dtype == torch.float32
                    assert torch.equal(saved, expected[row])
                    record = json.loads(load_tensor_metadata(path)["record"])
                    linf = (saved - clean[row]).abs().max().item()
                    assert record["linf"] == pytest.approx(linf) and linf <= EPS + 1e-6
                    assert record["adv_pred"] == adv_preds[row]
                    assert record["clean_pred"] == record["label"] == clip["label"]
                    assert record["seed"] == seed and record["time_s"] >= 0
    summary = json.loads(layout.attack_summary.read_text())
    assert summary["complete"] and summary["done_files"] == len(files)
    assert all(row["budget_violations"] == 0 for row in summary["rows"])
    assert (layout.root / "config_hash.txt").read_text().strip() == config.config_hash()


def test_rerun_skips_finished_clips_and_redoes_deleted_ones(finished_run, tmp_path, capsys) -> None:
    config, layout = _copy_run(finished_run, tmp_path)
    files = sorted(layout.adv_dir.rglob("*.safetensors"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    victim = files[4]
    original = victim.read_bytes()
    victim.unlink()
    assert run_attack(config, progress=False, factories=FAKES) == 0
    assert "written now: 1 files" in capsys.readouterr().out
    assert torch.equal(load_tensors(victim)["adv"], load_tensors_from_bytes(original))
    assert all(p.stat().st_mtime_ns == stamps[p] for p in files if p != victim)
    assert run_attack(config, progress=False, resume=False, factories=FAKES) == 0
    assert f"written now: {len(files)} files" in capsys.readouterr().out


def load_tensors_from_bytes(data: bytes) -> torch.Tensor:
    from safetensors.torch import load

    return load(data)["adv"]


def test_a_different_config_is_refused_unless_forced(finished_run, tmp_path) -> None:
    _config, layout = _copy_run(finished_run, tmp_path)
    changed = load_fake_config(write_config(tmp_path / "eps.yaml", layout.root, eps="3/255"))
    with pytest.raises(ConfigError, match=r"different config .*changed: eps.*--force"):
        run_attack(changed, progress=False, factories=FAKES)
    assert run_attack(changed, force=True, progress=False, factories=FAKES) == 0
    record = json.loads((layout.root / "run_config.json").read_text())
    assert record["config_hash"] == changed.config_hash()
    assert record["previous_config_hashes"] == [finished_run["config"].config_hash()]


def test_attack_needs_a_selection_unless_auto(tmp_path: Path) -> None:
    config = load_fake_config(write_config(tmp_path / "c.yaml", tmp_path / "out", max_clips=4))
    with pytest.raises(ConfigError, match="run `vidadv select"):
        run_attack(config, progress=False, factories=FAKES)
    auto = load_fake_config(
        write_config(tmp_path / "a.yaml", tmp_path / "out", max_clips=4, selection="auto")
    )
    assert run_attack(auto, progress=False, factories=FAKES) == 0
    assert (tmp_path / "out" / "selection.json").exists()


def test_attack_rejects_options_the_attack_does_not_take(tmp_path: Path) -> None:
    raw = config_dict(tmp_path / "out", max_clips=2, selection="auto")
    raw["attacks"][0]["options"] = {"shift_length": 7}
    (tmp_path / "c.yaml").write_text(json.dumps(raw))
    with pytest.raises(
        ConfigError, match=r"attack 'FGSM' \('fgsm'\) on white-box model 'A' rejected its options"
    ):
        run_attack(load_fake_config(tmp_path / "c.yaml"), progress=False, factories=FAKES)


# ------------------------------------------------------------------------------------------------
# evaluate and compare
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated_run(finished_run: dict[str, Any]) -> dict[str, Any]:
    layout: RunLayout = finished_run["layout"]
    code = run_evaluate(
        layout.root,
        quantize=True,
        h264=True,
        progress=False,
        transforms={"h264-crf23": _blurred_codec},  # deterministic stand-in; the real codec: see below
        factories=FAKES,
    )
    assert code == 0
    return finished_run


def _independent_outcomes(layout: RunLayout, variant: str = "float") -> dict[tuple[str, str, str, str], int]:
    clips = json.loads(layout.selection_json.read_text())["selected"]
    outcomes = {}
    for whitebox in ("A", "B"):
        for attack in ("FGSM", "BIM(3)", "RAND"):
            for clip in clips:
                adv = load_tensors(layout.adv_path(whitebox, attack, clip["clip_id"]))["adv"][None]
                if variant == "uint8":
                    adv = torch.round(adv * 255) / 255
                elif variant == "h264-crf23":
                    adv = _blurred_codec(adv[0])[None]
                for model in MODELS:
                    outcomes[(whitebox, attack, clip["clip_id"], model)] = _pred(model, adv)[0]
    return outcomes


def test_outcome_table_matches_independent_predictions(evaluated_run: dict[str, Any]) -> None:
    layout: RunLayout = evaluated_run["layout"]
    labels = {c["clip_id"]: c["label"] for c in json.loads(layout.selection_json.read_text())["selected"]}
    rows = list(csv.DictReader((layout.eval_dir / "outcomes.csv").open()))
    assert list(rows[0]) == ["whitebox", "attack", "clip_id", "model", "label", "pred", "fooled", "variant"]
    for variant in ("float", "uint8", "h264-crf23"):
        expected = _independent_outcomes(layout, variant)
        got = {
            (r["whitebox"], r["attack"], r["clip_id"], r["model"]): r for r in rows if r["variant"] == variant
        }
        assert set(got) == set(expected)
        for key, pred in expected.items():
            assert int(got[key]["pred"]) == pred
            assert int(got[key]["fooled"]) == int(pred != labels[key[2]])


def test_asr_matrix_and_results_json(evaluated_run: dict[str, Any]) -> None:
    layout: RunLayout = evaluated_run["layout"]
    labels = {c["clip_id"]: c["label"] for c in json.loads(layout.selection_json.read_text())["selected"]}
    expected = _independent_outcomes(layout)
    n = len(labels)
    rows = list(csv.DictReader((layout.eval_dir / "asr_matrix.csv").open()))
    assert len(rows) == 6
    for row in rows:
        asr = {}
        for model in MODELS:
            fooled = [expected[(row["white-box"], row["attack"], c, model)] != labels[c] for c in labels]
            asr[model] = 100 * sum(fooled) / n
            assert float(row[model]) == pytest.approx(asr[model], abs=0.005)
        blackbox = [asr[m] for m in MODELS if m != row["white-box"]]
        assert float(row["black-box avg"]) == pytest.approx(sum(blackbox) / 2, abs=0.005)
        assert int(row["n clips"]) == n
    results = json.loads((layout.eval_dir / "results.json").read_text())
    assert results["seed"] == 5 and results["config"]["eps"] == pytest.approx(EPS)
    assert {"torch", "vidadv", "python"} <= set(results["versions"])
    assert f"{n} clips per (white-box, attack) row" in results["denominator"]
    records = {(r["whitebox"], r["attack"]): r for r in results["variants"]["float"]["asr_matrix"]}
    assert len(records) == len(rows)
    for row in rows:  # the JSON records hold the CSV matrix as fractions
        record = records[(row["white-box"], row["attack"])]
        assert record["n_clips"] == int(row["n clips"])
        for model in MODELS:
            assert 100 * record["asr"][model] == pytest.approx(float(row[model]), abs=0.005)
        assert 100 * record["blackbox_average"] == pytest.approx(float(row["black-box avg"]), abs=0.005)
    predictions = results["variants"]["float"]["predictions"]
    assert len(predictions) == 6 * n
    for entry in predictions:
        for model, pred in entry["preds"].items():
            assert pred == expected[(entry["whitebox"], entry["attack"], entry["clip_id"], model)]
    table1 = {row["attack"]: row for row in results["variants"]["float"]["table1"]}
    for attack in ("FGSM", "BIM(3)", "RAND"):
        overall = table1[attack]["overall"]
        per_clip = []
        for clip in labels:
            fractions = [
                sum(expected[(wb, attack, clip, m)] != labels[clip] for m in MODELS if m != wb) / 2
                for wb in ("A", "B")
            ]
            per_clip.append(sum(fractions) / 2)
        assert overall["asr"] == pytest.approx(sum(per_clip) / n)
        assert overall["lo"] <= overall["asr"] <= overall["hi"]
    for name in (
        "figure3_A.png",
        "figure3_B.png",
        "figure3_uint8_A.png",
        "report.html",
        "table1.md",
        "variants.md",
    ):
        assert (layout.eval_dir / name).is_file(), name
    html = (layout.eval_dir / "report.html").read_text()
    # 3 attacks x (clean, adversarial, perturbation): linked lossless PNGs (one clean clip shared), no GIFs
    gallery = sorted({src for src in re.findall(r'src="(gallery/[^"]+)"', html)})
    assert html.count('src="gallery/') == 9 and len(gallery) == 7 and "gif" not in html
    assert all((layout.eval_dir / src).is_file() for src in gallery)
    assert 'class="prov"' in html and "config hash" in html and 'href="outcomes.csv"' in html


def test_evaluation_rerun_uses_the_cache(evaluated_run: dict[str, Any], capsys) -> None:
    layout: RunLayout = evaluated_run["layout"]
    counting = CountingModelFactory()
    before = (layout.eval_dir / "outcomes.csv").read_text()
    assert (
        run_evaluate(
            layout.root,
            quantize=True,
            h264=True,
            progress=False,
            gallery=0,
            factories=replace(FAKES, load_model=counting),
        )
        == 0
    )
    assert counting.built == []
    assert (layout.eval_dir / "outcomes.csv").read_text() == before
    assert "ASR = share of the attacked clips" in capsys.readouterr().out


def test_evaluation_reports_missing_clips(finished_run, tmp_path, capsys) -> None:
    _config, layout = _copy_run(finished_run, tmp_path)
    next(layout.adv_dir.rglob("*.safetensors")).unlink()
    assert run_evaluate(layout.root, progress=False, gallery=0, factories=FAKES) == 1
    output = capsys.readouterr().out
    n = json.loads(layout.selection_json.read_text())["num_selected"]
    assert (
        f"({6 * n - 1} of {6 * n} adversarial clips present)" in output and "WARNING: 1 adversarial" in output
    )


def _hand_mcnemar(only_a: int, only_b: int) -> float:
    n = only_a + only_b
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n)


def test_compare_is_paired_on_the_same_clips(evaluated_run: dict[str, Any]) -> None:
    layout: RunLayout = evaluated_run["layout"]
    counting = CountingModelFactory()
    assert (
        run_compare(
            layout.root, "RAND", "FGSM", progress=False, factories=replace(FAKES, load_model=counting)
        )
        == 0
    )
    assert counting.built == []  # served from the evaluation cache
    labels = {c["clip_id"]: c["label"] for c in json.loads(layout.selection_json.read_text())["selected"]}
    expected = _independent_outcomes(layout)
    stem = next(layout.eval_dir.glob("compare_RAND-*_vs_FGSM-*.json"))
    rows = json.loads(stem.read_text())["rows"]
    single = [r for r in rows if r["model"] in MODELS]
    assert {(r["whitebox"], r["model"]) for r in single} == {("A", "B"), ("A", "C"), ("B", "A"), ("B", "C")}
    for row in single:
        a = [int(expected[(row["whitebox"], "RAND", c, row["model"])] != labels[c]) for c in labels]
        b = [int(expected[(row["whitebox"], "FGSM", c, row["model"])] != labels[c]) for c in labels]
        only_a = sum(x and not y for x, y in zip(a, b, strict=True))
        only_b = sum(y and not x for x, y in zip(a, b, strict=True))
        assert (row["only_a"], row["only_b"]) == (only_a, only_b)
        assert row["diff"] == pytest.approx((sum(a) - sum(b)) / len(a))
        assert row["p_mcnemar"] == pytest.approx(_hand_mcnemar(only_a, only_b))
        assert row["lo"] <= row["diff"] <= row["hi"]
    overall = [r for r in rows if r["whitebox"] == "all"]
    assert len(overall) == 1 and overall[0]["n"] == len(labels)
    with pytest.raises(ValueError, match="unknown attack 'TT'; attacks: FGSM, BIM\\(3\\), RAND"):
        run_compare(layout.root, "TT", "FGSM", progress=False, factories=replace(FAKES, load_model=counting))
    with pytest.raises(ValueError, match="variant must be one of"):
        run_compare(
            layout.root,
            "RAND",
            "FGSM",
            variant="png",
            progress=False,
            factories=replace(FAKES, load_model=counting),
        )


def test_evaluate_refuses_torchrun(evaluated_run, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="without torchrun"):
        run_evaluate(evaluated_run["layout"].root, factories=FAKES)


def test_evaluate_rejects_a_folder_without_a_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        run_evaluate(tmp_path / "nothing")
    with pytest.raises(ValueError, match="no run_config.json"):
        run_evaluate(tmp_path)


def test_paper_numbers_are_shown_beside_matching_attacks(tmp_path: Path, capsys) -> None:
    attacks = [{"name": "TI(1)", "spec": "fgsm"}, {"name": "mine", "spec": "bim", "paper_key": "MI+TT(10)"}]
    config = load_fake_config(
        write_config(
            tmp_path / "c.yaml",
            tmp_path / "out",
            max_clips=4,
            selection="auto",
            paper_dataset="ucf101",
            attacks=attacks,
        )
    )
    assert run_attack(config, progress=False, factories=FAKES) == 0
    capsys.readouterr()
    assert run_evaluate(tmp_path / "out", progress=False, gallery=0, factories=FAKES) == 0
    output = capsys.readouterr().out
    table1 = {row["attack"]: row for row in csv.DictReader((tmp_path / "out/eval/table1.csv").open())}
    assert table1["TI(1)"]["paper"] == "45.96" and table1["mine"]["paper"] == "44.80"
    matrix = list(csv.DictReader((tmp_path / "out/eval/asr_matrix.csv").open()))
    assert {row["paper black-box avg"] for row in matrix} == {"45.96", "44.80"}
    assert "45.96" in output and "44.80" in output


def test_clips_per_class_keeps_the_first_correct_clips_of_each_label(tmp_path: Path) -> None:
    unlimited = load_fake_config(write_config(tmp_path / "u.yaml", tmp_path / "u"))
    assert run_select(unlimited, progress=False, factories=FAKES) == 0
    everything = json.loads((tmp_path / "u" / "selection.json").read_text())["selected"]
    capped = load_fake_config(write_config(tmp_path / "c.yaml", tmp_path / "c", clips_per_class=1))
    assert capped.selection_hash() != unlimited.selection_hash()
    assert run_select(capped, progress=False, factories=FAKES) == 0
    selection = json.loads((tmp_path / "c" / "selection.json").read_text())
    expected: dict[int, dict[str, Any]] = {}
    for entry in everything:  # independent recomputation: first selected clip of each label
        expected.setdefault(entry["label"], entry)
    assert selection["selected"] == sorted(expected.values(), key=lambda e: e["index"])
    assert selection["dropped_counts"].get("over the clips_per_class quota") == len(everything) - len(
        expected
    )
