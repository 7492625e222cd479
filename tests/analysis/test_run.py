"""`vidadv analyze` end to end on stand-in models and an in-memory dataset; config validation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.analysis.standins import FrameModel, TinyConvNet, channel_clips
from vidadv.analysis.plots import heatmap_title
from vidadv.experiments.analyze import (
    CONFIG_KEYS,
    AnalysisModelSpec,
    load_analysis_config,
    parse_analysis_config,
    run_analysis,
    run_analyze,
)
from vidadv.experiments.runtime import Factories
from vidadv.models import wrap_network

REPO_ROOT = Path(__file__).resolve().parents[2]
FRAMES = 8
MODEL_FRAMES = {"f1": 1, "f1_copy": 1, "f5": 5}


def frame_model_factory(spec: AnalysisModelSpec, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    scale = 3.0 if spec.name == "f1_copy" else 6.0
    return FrameModel(MODEL_FRAMES[spec.name], scale=scale)


def make_dataset() -> list[tuple[torch.Tensor, int, str]]:
    """Six clips every frame model gets right, plus clip "odd" that only the frame-5 model gets wrong."""
    labels = [0, 1, 2, 0, 1, 2]
    clips = channel_clips(labels, frames=FRAMES, seed=4)
    items = [(clips[i], labels[i], f"clip{i}") for i in range(len(labels))]
    odd = channel_clips([0], frames=FRAMES, seed=5)[0]
    odd[:, 5] = odd[[2, 1, 0], 5]  # in frame 5 the brightest channel is 2, not the label 0
    items.insert(3, (odd, 0, "odd"))
    return items


def base_config(tmp_path: Path, **overrides) -> dict:
    raw = {
        "models": [{"name": "f1"}, {"name": "f1_copy"}, "f5"],
        "dataset": {"type": "in-memory"},
        "output_dir": str(tmp_path / "out"),
        "batch_size": 3,
        "chunk_size": 5,
        "shuffle": False,
    }
    raw.update(overrides)
    return raw


def dataset_factory(spec: dict) -> list:
    assert spec == {"type": "in-memory"}
    return make_dataset()


#: frame models on the in-memory clips
FRAME_MODELS = Factories(load_model=frame_model_factory, build_dataset=dataset_factory)


def read_matrix(path: Path) -> tuple[list[str], torch.Tensor]:
    rows = list(csv.reader(path.open()))
    names = rows[0][1:]
    assert [r[0] for r in rows[1:]] == names
    return names, torch.tensor([[float(v) for v in r[1:]] for r in rows[1:]], dtype=torch.float64)


def test_run_analysis_end_to_end(tmp_path: Path) -> None:
    config = parse_analysis_config(base_config(tmp_path))
    result = run_analysis(config, factories=FRAME_MODELS, progress=False)
    out = tmp_path / "out"
    assert result.clip_ids == [f"clip{i}" for i in range(6)]  # "odd" is skipped: f5 misclassifies it
    assert result.num_examined == 7
    for method in ("gradcam", "zero_padding", "mean_padding"):
        names, matrix = read_matrix(out / f"spearman_{method}.csv")
        assert names == ["f1", "f1_copy", "f5"]
        assert torch.allclose(matrix.diagonal(), torch.ones(3, dtype=torch.float64))
        assert torch.allclose(matrix, matrix.T)
        assert matrix[0, 1] == pytest.approx(1.0, abs=1e-6)  # same frame, different scale
        png = (out / f"spearman_{method}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        per_clip = list(csv.DictReader((out / f"spearman_{method}_per_clip.csv").open()))
        assert len(per_clip) == 6 * 3  # 3 model pairs per clip
        importance_rows = list(csv.DictReader((out / f"importance_{method}.csv").open()))
        assert len(importance_rows) == 6 * 3
        assert len([k for k in importance_rows[0] if k.startswith("frame_")]) == FRAMES
    for method in ("gradcam", "zero_padding"):
        _, matrix = read_matrix(out / f"spearman_{method}.csv")
        # One-hot importance at frames 1 and 5 of T = 8: rho = -1/7 on every clip.
        assert matrix[0, 2] == pytest.approx(-1.0 / 7.0, abs=1e-6)
        zero = result.importances[method]["f5"]
        assert torch.equal(zero.argmax(dim=1), torch.full((6,), 5))
    clips_rows = list(csv.DictReader((out / "clips.csv").open()))
    assert [r["clip_id"] for r in clips_rows] == ["clip0", "clip1", "clip2", "odd", "clip3", "clip4", "clip5"]
    assert [r["analyzed"] for r in clips_rows] == ["1", "1", "1", "0", "1", "1", "1"]
    assert clips_rows[3]["pred_f5"] == "2" and clips_rows[3]["pred_f1"] == "0"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_clips_analyzed"] == 6 and summary["num_clips_examined"] == 7
    assert summary["models"] == ["f1", "f1_copy", "f5"]
    assert summary["mean_spearman"]["zero_padding"][0][2] == pytest.approx(-1.0 / 7.0, abs=1e-6)
    assert summary["config"]["chunk_size"] == 5
    assert not list(out.glob(".*"))  # no temporaries left behind


def test_only_correct_false_and_num_clips_with_seeded_order(tmp_path: Path) -> None:
    config = parse_analysis_config(base_config(tmp_path, only_correct=False, methods=["zero-padding"]))
    result = run_analysis(config, factories=FRAME_MODELS, progress=False)
    assert "odd" in result.clip_ids and len(result.clip_ids) == 7
    assert set(result.importances) == {"zero_padding"}
    assert not (tmp_path / "out" / "spearman_gradcam.csv").exists()
    capped = base_config(tmp_path / "capped", only_correct=False, methods=["zero_padding"], num_clips=2)
    result = run_analysis(
        parse_analysis_config(capped),
        factories=FRAME_MODELS,
        progress=False,
    )
    assert result.clip_ids == ["clip0", "clip1"] and result.num_examined == 2  # no clip loaded beyond need

    picks = []
    for run in range(2):
        raw = base_config(tmp_path / f"r{run}", shuffle=True, seed=3, num_clips=4, methods=["mean_padding"])
        result = run_analysis(
            parse_analysis_config(raw),
            factories=FRAME_MODELS,
            progress=False,
        )
        assert len(result.clip_ids) == 4 and "odd" not in result.clip_ids
        expected_order = [
            make_dataset()[i][2] for i in torch.randperm(7, generator=torch.Generator().manual_seed(3))
        ]
        assert result.clip_ids == [c for c in expected_order if c != "odd"][:4]
        picks.append(result.clip_ids)
    assert picks[0] == picks[1]


def test_heatmap_title_counts_clips() -> None:
    assert heatmap_title("zero_padding", 240) == "Zero-padding: Spearman rank correlation (240 clips)"
    assert "(1 clip)" in heatmap_title("gradcam", 1)


def test_config_validation_messages(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match="unknown config key 'frames_per_clip'.*allowed keys: models, dataset"
    ):
        parse_analysis_config(base_config(tmp_path, frames_per_clip=8))
    with pytest.raises(ValueError, match=r"models\[0\].*allowed keys: name, checkpoint"):
        parse_analysis_config(base_config(tmp_path, models=[{"name": "f1", "weights": "x"}]))
    with pytest.raises(ValueError, match="valid methods"):
        parse_analysis_config(base_config(tmp_path, methods=["saliency"]))
    with pytest.raises(ValueError, match="unique.*f1"):
        parse_analysis_config(base_config(tmp_path, models=["f1", "f1"]))
    with pytest.raises(ValueError, match="missing required config key.*output_dir"):
        parse_analysis_config({"models": ["f1"], "dataset": {}})
    with pytest.raises(ValueError, match="zero_fill"):
        parse_analysis_config(base_config(tmp_path, zero_fill="black"))
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        parse_analysis_config(base_config(tmp_path, chunk_size=0))
    with pytest.raises(ValueError, match="clamp, cyclic"):
        parse_analysis_config(base_config(tmp_path, mean_padding_boundary="reflect"))
    labelled = parse_analysis_config(
        base_config(tmp_path, models=["f1", {"name": "f1", "label": "f1 again"}])
    )
    assert [m.display_name for m in labelled.models] == ["f1", "f1 again"]
    assert set(CONFIG_KEYS) >= set(labelled.to_dict())


def test_embedded_config_parses() -> None:
    config = load_analysis_config(REPO_ROOT / "configs" / "analysis_embedded.yaml")
    assert [m.name for m in config.models] == ["nl-s", "nl-l", "slowfast-s", "slowfast-l", "tpn-s", "tpn-l"]
    assert config.dataset == {
        "type": "synthetic",
        "split": "test",
        "num_clips": 480,
        "size": 32,
        "frames": 32,
        "seed": 0,
    }
    assert config.methods == ("gradcam", "zero_padding", "mean_padding")
    assert config.only_correct


def test_run_analyze_skips_refuses_and_forces(tmp_path: Path, capsys) -> None:
    config_path = tmp_path / "analysis.yaml"
    config_path.write_text(yaml.safe_dump(base_config(tmp_path, methods=["zero_padding"])))
    kwargs = {"factories": FRAME_MODELS, "progress": False}
    assert run_analyze(str(config_path), **kwargs) == 0
    summary = tmp_path / "out" / "summary.json"
    first = summary.stat().st_mtime_ns
    assert run_analyze(str(config_path), **kwargs) == 0  # same config: already done, skipped
    assert "already" in capsys.readouterr().out and summary.stat().st_mtime_ns == first
    config_path.write_text(yaml.safe_dump(base_config(tmp_path, methods=["mean_padding"])))
    assert run_analyze(str(config_path), **kwargs) == 2  # different config in the same folder
    assert "different config" in capsys.readouterr().err
    assert run_analyze(str(config_path), force=True, **kwargs) == 0
    assert json.loads(summary.read_text())["methods"] == ["mean_padding"]
    config_path.write_text("models: [f1]\nbogus: 1\n")
    assert run_analyze(str(config_path), **kwargs) == 2
    assert "allowed keys" in capsys.readouterr().err
    assert run_analyze(str(tmp_path / "missing.yaml"), **kwargs) == 2


def test_gradcam_needs_a_layer(tmp_path: Path, capsys) -> None:
    def factory(spec: AnalysisModelSpec, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
        model = TinyConvNet(num_classes=3)
        del model.attention_layer
        return model

    plain = Factories(load_model=factory, build_dataset=dataset_factory)
    config_path = tmp_path / "analysis.yaml"
    config_path.write_text(yaml.safe_dump(base_config(tmp_path, models=["plain"], only_correct=False)))
    assert run_analyze(str(config_path), factories=plain, progress=False) == 2
    assert "no `attention_layer`" in capsys.readouterr().err
    with_layer = base_config(tmp_path, models=[{"name": "plain", "layer": "conv"}], only_correct=False)
    result = run_analysis(
        parse_analysis_config(with_layer),
        factories=plain,
        progress=False,
    )
    assert result.importances["gradcam"]["plain"].shape == (7, FRAMES)
    bad_layer = base_config(tmp_path, models=[{"name": "plain", "layer": "nonexistent"}])
    with pytest.raises(ValueError, match="no layer 'nonexistent'"):
        run_analysis(
            parse_analysis_config(bad_layer),
            factories=plain,
            progress=False,
        )


@pytest.mark.slow
def test_embedded_config_on_zoo_architectures(tmp_path: Path) -> None:
    """The embedded config's six zoo architectures (random weights, no trained zoo) on 1 synthetic clip."""
    zoo = pytest.importorskip("vidadv.models.zoo")
    pytest.importorskip("vidadv.data.synthetic")

    def untrained_zoo_model(
        spec: AnalysisModelSpec, device: torch.device, dtype: torch.dtype
    ) -> torch.nn.Module:
        return wrap_network(spec.name, zoo.build_zoo_network(spec.name, seed=0))

    raw = yaml.safe_load((REPO_ROOT / "configs" / "analysis_embedded.yaml").read_text())
    # One clip and two methods keep this short (mean-padding costs as much as zero-padding).
    raw.update(output_dir=str(tmp_path / "embedded"), num_clips=1, only_correct=False)
    raw.update(methods=["gradcam", "zero_padding"])
    result = run_analysis(
        parse_analysis_config(raw), factories=Factories(load_model=untrained_zoo_model), progress=False
    )
    assert len(result.clip_ids) == 1
    for method, correlation in result.correlations.items():
        assert correlation.mean.shape == (6, 6), method
        assert result.importances[method]["tpn-l"].shape == (1, 32)
        assert (tmp_path / "embedded" / f"spearman_{method}.png").is_file()
