"""Hugging Face video transformers as vidadv models (vidadv.models.hf): loading, normalization, token
Grad-CAM, every attack, and clear errors on bad folders and clips."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch

from vidadv.analysis.importance import gradcam_importance
from vidadv.attacks import available_attacks, build_attack
from vidadv.experiments.analyze import parse_analysis_config, run_analysis
from vidadv.experiments.runtime import Factories
from vidadv.models import load_model, zoo_transformers
from vidadv.models.gradcam import grad_cam
from vidadv.models.hf import (
    HFVideoClassifier,
    TokenGrid,
    import_transformers,
    load_hf_video_classifier,
    preprocessor_normalization,
)

needs_transformers = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None,
    reason="transformers is not installed (optional extra: pip install 'vidadv[transformers]')",
)

FRAMES, SIZE, CLASSES = 8, 16, 5
# The VideoMAE folder ships a preprocessor config with these statistics (0..1 pixel units, HF's usual
# rescale_factor 1/255); TimeSformer and ViViT ship none, so ImageNet's apply.
VIDEOMAE_MEAN, VIDEOMAE_STD = (0.45, 0.40, 0.35), (0.20, 0.25, 0.30)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SMALL = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64, "num_labels": CLASSES}


def _save(kind: str, folder: Path, layers: int = 2) -> torch.nn.Module:
    """A tiny random `kind` video classifier saved to `folder` (returned in eval mode)."""
    import transformers

    common = {**SMALL, "num_hidden_layers": layers, "image_size": SIZE, "num_frames": FRAMES}
    if kind == "videomae":
        config = transformers.VideoMAEConfig(patch_size=8, tubelet_size=2, **common)
        cls = transformers.VideoMAEForVideoClassification
    elif kind == "timesformer":
        config = transformers.TimesformerConfig(patch_size=8, **common)
        cls = transformers.TimesformerForVideoClassification
    else:
        config = transformers.VivitConfig(tubelet_size=[2, 8, 8], **common)
        cls = transformers.VivitForVideoClassification
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = cls(config).eval()
    model.save_pretrained(folder)
    if kind == "videomae":
        preprocessor = {
            "image_processor_type": "VideoMAEImageProcessor",
            "do_rescale": True,
            "rescale_factor": 1 / 255,
            "do_normalize": True,
            "image_mean": list(VIDEOMAE_MEAN),
            "image_std": list(VIDEOMAE_STD),
        }
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, tuple[Path, torch.nn.Module]]:
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers is not installed (optional extra: pip install 'vidadv[transformers]')")
    root = tmp_path_factory.mktemp("hf")
    return {kind: (root / kind, _save(kind, root / kind)) for kind in ("videomae", "timesformer", "vivit")}


def _load(folder: Path) -> HFVideoClassifier:
    """`load_model("hf", ...)`, ignoring the ImageNet-defaults warning (tested on its own)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*has no preprocessor config", UserWarning)
        return load_model("hf", checkpoint=folder)


def _clips(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ loading


@needs_transformers
@pytest.mark.parametrize("kind", ["videomae", "timesformer", "vivit"])
def test_logits_equal_the_transformers_model_after_normalization(saved, kind) -> None:
    folder, reference = saved[kind]
    model = _load(folder)
    mean, std = (VIDEOMAE_MEAN, VIDEOMAE_STD) if kind == "videomae" else (IMAGENET_MEAN, IMAGENET_STD)
    x = _clips()
    normalized = (x - torch.tensor(mean).view(1, 3, 1, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1, 1)
    with torch.no_grad():
        expected = reference(pixel_values=normalized.permute(0, 2, 1, 3, 4)).logits
        got = model(x)
    assert got.shape == (2, CLASSES)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert model.num_classes == CLASSES and model.min_frames == FRAMES
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


@needs_transformers
def test_missing_preprocessor_config_warns_and_states_imagenet(saved) -> None:
    with pytest.warns(UserWarning, match="ImageNet mean"):
        model = load_hf_video_classifier(saved["timesformer"][0])
    assert "ImageNet" in model.normalization_source
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = load_hf_video_classifier(saved["videomae"][0])
    assert model.normalization_source.endswith("preprocessor_config.json")


def test_preprocessor_rescale_factor_is_folded_into_mean_and_std(tmp_path) -> None:
    # pixel/127.5 - 1 for pixels 0..255 is 2x - 1 = (x - 0.5) / 0.5 for x in [0, 1].
    config = {
        "do_rescale": True,
        "rescale_factor": 1 / 127.5,
        "image_mean": [1.0] * 3,
        "image_std": [1.0] * 3,
    }
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps(config))
    mean, std, source = preprocessor_normalization(tmp_path)
    assert mean == pytest.approx((0.5,) * 3) and std == pytest.approx((0.5,) * 3)
    assert source.endswith("video_preprocessor_config.json")
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps({"do_normalize": False}))
    mean, std, _ = preprocessor_normalization(tmp_path)
    assert mean == (0.0,) and std == pytest.approx((1.0,))  # the model sees pixel / 255 = x
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps({"image_std": [0.2, 0.0, 0.2]}))
    with pytest.raises(ValueError, match="image_std must be positive"):
        preprocessor_normalization(tmp_path)


@needs_transformers
def test_mean_std_arguments_override_the_preprocessor(saved) -> None:
    model = load_model("hf", checkpoint=saved["videomae"][0], mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    torch.testing.assert_close(model.std.flatten(), torch.full((3,), 0.25))
    assert model.normalization_source == "the mean/std arguments"


# ------------------------------------------------------------------------------------------ Grad-CAM


@needs_transformers
@pytest.mark.parametrize(
    ("kind", "grid"), [("videomae", (4, 2, 2)), ("timesformer", (8, 2, 2)), ("vivit", (4, 2, 2))]
)
def test_token_grid_cell_comes_from_its_own_tubelet_and_patch(tmp_path, kind, grid) -> None:
    """With one encoder block the grid is the patch embedding: cell (t, h, w) depends only on the input
    frames of tubelet t and the pixels of patch (h, w)."""
    _save(kind, tmp_path / kind, layers=1)
    model = _load(tmp_path / kind)
    captured = []
    handle = model.network.token_grid.register_forward_hook(lambda _m, _i, out: captured.append(out))
    x = _clips(1).requires_grad_(True)
    model(x)
    handle.remove()
    assert captured[0].shape[2:] == grid
    frames_per_slice, patch = FRAMES // grid[0], SIZE // grid[1]
    for t, h, w in [(0, 0, 0), (grid[0] - 1, 1, 0), (1, 0, 1)]:
        (gradient,) = torch.autograd.grad(captured[0][0, :, t, h, w].sum(), x, retain_graph=True)
        support = gradient.abs().sum(dim=(0, 1)) > 0  # (T, H, W)
        expected = torch.zeros_like(support)
        expected[
            t * frames_per_slice : (t + 1) * frames_per_slice,
            h * patch : (h + 1) * patch,
            w * patch : (w + 1) * patch,
        ] = True
        assert torch.equal(support, expected), (kind, t, h, w)


def test_token_grid_round_trip_and_bad_token_count() -> None:
    for order in ("thw", "hwt"):
        grid = TokenGrid((3, 2, 4), prefix_tokens=1, token_order=order)
        tokens = torch.randn(2, 1 + 24, 5)
        cells = grid(tokens)
        assert cells.shape == (2, 5, 3, 2, 4)
        assert torch.equal(grid.to_tokens(cells), tokens[:, 1:])
    # "thw": time outermost; "hwt": time innermost.
    tokens = torch.arange(24.0).view(1, 24, 1)
    assert TokenGrid((3, 2, 4), 0, "thw")(tokens)[0, 0, 1, 0, 0] == 8
    assert TokenGrid((3, 2, 4), 0, "hwt")(tokens)[0, 0, 1, 0, 0] == 1
    with pytest.raises(ValueError, match=r"expected tokens \(N, 25, C\)"):
        TokenGrid((3, 2, 4), 1, "thw")(torch.randn(2, 24, 5))


@needs_transformers
@pytest.mark.parametrize("kind", ["videomae", "timesformer", "vivit"])
def test_gradcam_gives_one_value_per_input_frame(saved, kind) -> None:
    model = _load(saved[kind][0])
    x, y = _clips(2), torch.tensor([0, 3])
    cam = grad_cam(model, x, y)
    slices = FRAMES if kind == "timesformer" else FRAMES // 2
    assert cam.shape == (2, slices, 2, 2) and torch.isfinite(cam).all() and cam.sum() > 0
    torch.testing.assert_close(grad_cam(copy.deepcopy(model), x, y), cam)  # the tap follows the copy
    importance = gradcam_importance(model, x, y)
    assert importance.shape == (2, FRAMES) and torch.isfinite(importance).all()
    repeated = gradcam_importance(model, x, y, temporal_mapping="repeat")
    per_slice = cam.mean(dim=(-2, -1))
    torch.testing.assert_close(repeated, per_slice.repeat_interleave(FRAMES // slices, dim=1))


# ------------------------------------------------------------------------------------------ attacks

CHEAP = {
    "vt": {"vt_samples": 2},
    "vr": {"vr_samples": 2},
    "sim": {"sim_copies": 2},
    "tt": {"shift_length": 3},
}
SPECS = [name for name in available_attacks() if name != "sgm"] + ["tt+mi", "ata+tt", "vr+di+tt+ti+mi"]


def _attack_options(spec: str) -> dict:
    options: dict = {"eps": 8 / 255}
    for name in spec.split("+"):
        options.update(CHEAP.get(name, {}))
    if "fgsm" not in spec.split("+"):
        options["steps"] = 2
    if "di" in spec.split("+"):
        options["resize_rate"] = 1.5
    return options


@needs_transformers
@pytest.mark.parametrize("kind", ["videomae", "timesformer"])
@pytest.mark.parametrize("spec", SPECS)
def test_every_attack_runs_within_budget_and_range(saved, kind, spec) -> None:
    model = _load(saved[kind][0])
    x, y = _clips(2, seed=1), torch.tensor([1, 2])
    x_adv = build_attack(spec, model, **_attack_options(spec))(x, y)
    assert x_adv.shape == x.shape and torch.isfinite(x_adv).all()
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > 0, f"{spec} left the clip unchanged"


@needs_transformers
def test_sgm_refuses_transformers_clearly(saved) -> None:
    model = _load(saved["videomae"][0])
    with pytest.raises(ValueError, match="SGM needs a residual network"):
        build_attack("sgm+bim", model, eps=8 / 255, steps=2)


# ------------------------------------------------------------------------------------------ errors


@needs_transformers
def test_bad_folders_get_clear_errors(tmp_path, saved) -> None:
    import transformers

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model("hf", checkpoint=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        load_model("hf", checkpoint=tmp_path / "empty")
    with pytest.raises(ValueError, match="needs checkpoint="):
        load_model("hf")
    with pytest.raises(ValueError, match="is a file"):
        load_model("hf", checkpoint=saved["videomae"][0] / "config.json")

    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((saved["videomae"][0] / "config.json").read_text())
    with pytest.raises(ValueError, match="cannot load the Hugging Face model in .*no_weights"):
        load_model("hf", checkpoint=no_weights)

    bert = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    transformers.BertForSequenceClassification(bert).save_pretrained(tmp_path / "bert")
    with pytest.raises(ValueError, match="holds a 'bert' model, not a video classifier"):
        load_model("hf", checkpoint=tmp_path / "bert")

    pretraining = transformers.VideoMAEConfig(
        image_size=SIZE, patch_size=8, num_frames=FRAMES, num_hidden_layers=1, **SMALL
    )
    transformers.VideoMAEForPreTraining(pretraining).save_pretrained(tmp_path / "pretraining")
    with pytest.raises(ValueError, match="do not cover the video classifier"):
        load_model("hf", checkpoint=tmp_path / "pretraining")

    with pytest.raises(ValueError, match="class-count mismatch.*5 classes"):
        load_model("hf", checkpoint=saved["videomae"][0], num_classes=400)
    with pytest.raises(ValueError, match="both mean and std"):
        load_model("hf", checkpoint=saved["videomae"][0], mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="no network overrides"):
        load_model("hf", checkpoint=saved["videomae"][0], layers=(1, 1, 1, 1))


@needs_transformers
@pytest.mark.parametrize("kind", ["videomae", "timesformer"])
def test_wrong_clip_shape_or_dtype_gets_a_clear_error(saved, kind) -> None:
    model = _load(saved[kind][0])
    with pytest.raises(ValueError, match=rf"exactly {FRAMES} frames of {SIZE}x{SIZE}"):
        model(torch.rand(1, 3, FRAMES * 2, SIZE, SIZE))
    with pytest.raises(ValueError, match=rf"exactly {FRAMES} frames of {SIZE}x{SIZE}"):
        model(torch.rand(1, 3, FRAMES, SIZE * 2, SIZE * 2))
    with pytest.raises(ValueError, match="at least 8 frames"):
        model(torch.rand(1, 3, FRAMES - 2, SIZE, SIZE))
    with pytest.raises(ValueError, match="computes in torch.float32"):
        model(torch.rand(1, 3, FRAMES, SIZE, SIZE, dtype=torch.float64))


def test_missing_transformers_gets_an_install_hint(tmp_path, monkeypatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "videomae"}))
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(ImportError, match=r"pip install 'vidadv\[transformers\]'"):
        load_model("hf", checkpoint=tmp_path)


@needs_transformers
def test_vidadv_analyze_runs_on_hf_models(saved, tmp_path) -> None:
    raw = {
        "models": [
            {"name": "hf", "checkpoint": str(saved["videomae"][0]), "label": "videomae"},
            {"name": "hf", "checkpoint": str(saved["timesformer"][0]), "label": "timesformer"},
        ],
        "dataset": {"type": "in-memory"},
        "output_dir": str(tmp_path / "out"),
        "only_correct": False,
        "shuffle": False,
        "batch_size": 2,
    }
    clips = _clips(3, seed=2)
    items = [(clips[i], i % CLASSES, f"clip{i}") for i in range(3)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*has no preprocessor config", UserWarning)
        factories = Factories(build_dataset=lambda spec: items)
        result = run_analysis(parse_analysis_config(raw), factories=factories, progress=False)
    for method in ("gradcam", "zero_padding", "mean_padding"):
        for label in ("videomae", "timesformer"):
            importance = result.importances[method][label]
            assert importance.shape == (3, FRAMES) and torch.isfinite(importance).all()
    assert (tmp_path / "out" / "summary.json").is_file()


@needs_transformers
@pytest.mark.parametrize("name", ["timesformer-s", "videomae-s"])
def test_zoo_transformer_exports_and_loads_back_through_load_model(tmp_path, name) -> None:
    network = zoo_transformers.build_transformer_network(name)
    again = zoo_transformers.build_transformer_network(name)
    same = zip(network.state_dict().values(), again.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in same)  # seeded initialization
    classifier = zoo_transformers.wrap_transformer_network(network).eval()
    zoo_transformers.export_pretrained(network, tmp_path / name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the exported preprocessor config carries the normalization
        loaded = load_model("hf", checkpoint=tmp_path / name)
    x = torch.rand(1, 3, 32, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), classifier(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loaded.std.flatten(), torch.full((3,), 0.25))
    assert loaded.num_classes == 12
    exempt = zoo_transformers.no_weight_decay(network)
    assert any(n.endswith("layernorm_before.weight") for n in exempt)
    if name == "timesformer-s":  # VideoMAE's position table is a fixed sinusoid, not a parameter
        for embedding in ("cls_token", "position_embeddings", "time_embeddings"):
            assert any(n.endswith(embedding) for n in exempt)
    assert not any(n.endswith("dense.weight") or n.endswith("query.weight") for n in exempt)


@needs_transformers
def test_export_pretrained_progress_false_silences_the_save_bar_and_restores_it(tmp_path, capfd) -> None:
    hf_logging = import_transformers().utils.logging
    network = zoo_transformers.build_transformer_network("videomae-s")
    zoo_transformers.export_pretrained(network, tmp_path / "loud", progress=True)
    loud = capfd.readouterr().err
    zoo_transformers.export_pretrained(network, tmp_path / "quiet", progress=False)
    quiet = capfd.readouterr().err
    assert "Writing" in loud  # transformers' own bar: the check below can fail
    assert "Writing" not in quiet
    assert hf_logging.is_progress_bar_enabled()  # the global setting is put back
