"""Procedural action clips: the dataset of vidadv's embedded transfer benchmark.

Pretrained Kinetics-400 weights cannot be used offline on a laptop CPU, so vidadv ships a small benchmark in
which the question of Wei et al. (AAAI 2022) can still be asked honestly: do adversarial clips crafted on one
video architecture transfer to others, and does Temporal Translation (cyclic temporal shifts) help?

Each class is defined by *motion over time*, never by the look of a single frame. The 12 classes form six
**time-reversed pairs** (class ``2k`` played backwards is class ``2k + 1``), so temporal order is necessary:
the unordered set of frames of a clip has exactly the same distribution for both classes of a pair.

=====  ============  ==========================================================  ===========
label  name          motion of the primary object over the sequence              reversed
=====  ============  ==========================================================  ===========
0      move_right    translates left -> right (direction jitter +-15 deg)         move_left
1      move_left     translates right -> left                                     move_right
2      move_down     translates top -> bottom (image y points down)               move_up
3      move_up       translates bottom -> top                                     move_down
4      zoom_in       grows by a factor 2.2-3.2 over the sequence (exponential)    zoom_out
5      zoom_out      shrinks by a factor 2.2-3.2 over the sequence                zoom_in
6      rotate_cw     rotates clockwise on screen, 200-360 deg per sequence        rotate_ccw
7      rotate_ccw    rotates counter-clockwise on screen                          rotate_cw
8      fade_in       opacity ramps 0 -> 1 (linear ramp, random width and centre)  fade_out
9      fade_out      opacity ramps 1 -> 0                                         fade_in
10     meet          two objects approach each other until they (almost) touch    part
11     part          two touching objects move apart                              meet
=====  ============  ==========================================================  ===========

Everything else is random per clip: background (two oriented gratings, colours, contrast), object shapes
(ellipse to rectangle continuum or triangle, aspect ratio), striped object textures, colours (the object
always differs in luminance from the background by 0.25-0.5), sizes, start position and phase, a static
distractor object (in the non-"meet/part" classes), camera jitter (smooth shake of up to ~1 pixel at 32x32),
lighting gain and flicker, and sensor noise. Clips are 8-bit quantized (multiples of 1/255), like decoded
video, and laid out ``(C, T, H, W)`` with values in ``[0, 1]``.

A clip of ``frames`` frames is a temporal window of a longer generated sequence of ``sequence_length``
frames (default ``3 * frames // 2``, i.e. 48 for 32-frame clips). The motion is defined over the whole
sequence (progress ``p = t / (L - 1)`` in ``[0, 1]``; the reversed class uses ``1 - p`` and plays camera
shake, flicker and noise backwards too), so a clip sees ``frames / sequence_length`` of the action and,
with ``random_window``, may start anywhere in it, as with real video. A fixed window is the centred one.

Determinism and splits: every random choice comes from a ``torch.Generator``. In :class:`ProceduralActions`
item ``i`` of split ``s`` uses its own generator seeded with ``item_seed(seed, s, i)`` (splitmix64 of the
seed, a per-split constant and the index), so an item does not depend on access order, batch composition or
dataset size, and train / val / test draw from different seed streams (disjoint in practice; the tests check
that no clip repeats across splits). Random windows use a second stream ``window_seed(item_seed, epoch)``;
call :meth:`ProceduralActions.set_epoch` to draw new windows each epoch. :func:`generate_batch` draws a
fresh batch from one generator, for training on unlimited data.

Rendering is vectorized over clips, frames and pixels (analytic shapes on coordinate grids, no per-pixel
Python loops); see ``benchmarks/synthetic_data.py`` for its speed.

The classes, seed streams and scene parameters are `synthetic_scene`, the renderer and `generate_batch`
`synthetic_render`; this module is the dataset and re-exports their public names.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from vidadv.data.synthetic_render import _render_items, generate_batch
from vidadv.data.synthetic_scene import (
    _CHUNK,
    _DEFAULT_NUM_CLIPS,
    CLASS_MOTIONS,
    CLASS_NAMES,
    GENERATOR_VERSION,
    REVERSED_PAIRS,
    SPLITS,
    _check_int,
    _check_split,
    _resolve_lengths,
    item_seed,
    window_seed,
)
from vidadv.utils.io import atomic_save_tensors

__all__ = [
    "CLASS_NAMES",
    "CLASS_MOTIONS",
    "REVERSED_PAIRS",
    "SPLITS",
    "GENERATOR_VERSION",
    "ProceduralActions",
    "generate_batch",
    "build_synthetic_dataset",
    "describe",
    "item_seed",
    "window_seed",
    "default_cache_dir",
]


# --------------------------------------------------------------------------------------------- dataset
def default_cache_dir() -> Path:
    """``$VIDADV_CACHE`` if set, else ``~/.cache/vidadv``."""
    root = os.environ.get("VIDADV_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "vidadv"


class ProceduralActions(Dataset):
    """Procedural action clips of one split, as a torch ``Dataset`` of ``(clip, label, clip_id)``.

    ``clip`` is float32 (3, frames, size, size) in [0, 1]; ``label`` an int in ``[0, 12)`` (see
    :data:`CLASS_NAMES`); ``clip_id`` a string ``"<split>-s<seed>-<index>"``. Labels are balanced:
    item ``i`` has label ``i % 12``. Items are rendered lazily in chunks and kept (as uint8) in memory:
    ``num_clips * 3 * size**2`` bytes times ``sequence_length`` (random windows: whole sequences are kept)
    or ``frames`` (fixed centred window) -- e.g. 354 MB for 2400 random-window clips at 32x32, L = 48.
    Before using DataLoader workers call :meth:`materialize` (or pass ``cache``), so that the workers share
    the rendered clips instead of each rendering its own copy.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``; each split has its own seed stream.
        size: frame height and width in pixels (>= 16; 32 is the CPU default, 64 or 112 also work).
        frames: clip length T (>= 2).
        num_clips: number of items (default 2400 / 600 / 1200 for train / val / test).
        seed: base seed of the dataset.
        sequence_length: length L of the generated sequence the clip is cut from (default ``3*frames//2``).
        random_window: cut a random window (new per epoch, see :meth:`set_epoch`) instead of the centred
            one. Default: True for ``"train"``, False otherwise.
        cache: False (render on the fly), True (cache the whole split as .safetensors under
            :func:`default_cache_dir`), or a folder to cache in.
        progress: show a progress bar while rendering a whole split (caching, :meth:`materialize`).
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 32,
        frames: int = 32,
        num_clips: int | None = None,
        seed: int = 0,
        sequence_length: int | None = None,
        random_window: bool | None = None,
        cache: bool | str | os.PathLike = False,
        progress: bool = True,
    ) -> None:
        self.split = _check_split(split)
        self.size, self.frames, self.sequence_length = _resolve_lengths(size, frames, sequence_length)
        self.num_clips = _check_int(
            "num_clips", _DEFAULT_NUM_CLIPS[self.split] if num_clips is None else num_clips, 1
        )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        if random_window is None:
            random_window = self.split == "train"
        if not isinstance(random_window, bool):
            raise TypeError(f"random_window must be a bool or None, got {type(random_window).__name__}")
        self.random_window = random_window
        self.progress = progress
        self.epoch = 0
        self.labels = torch.arange(self.num_clips) % len(CLASS_NAMES)
        # Stored frames: whole sequences when windows move between epochs, else just the centred window.
        self._stored_frames = self.sequence_length if random_window else self.frames
        self._store = torch.empty(
            (self.num_clips, 3, self._stored_frames, self.size, self.size), dtype=torch.uint8
        )
        self._rendered = torch.zeros(math.ceil(self.num_clips / _CHUNK), dtype=torch.bool)
        self._window_cache: dict[int, int] = {}
        self.cache_path: Path | None = None
        if cache is not False and cache is not None:
            folder = default_cache_dir() / "synthetic" if cache is True else Path(cache)
            self.cache_path = folder / self._cache_name()
            self._load_or_create_cache()

    # ------------------------------------------------------------------ public
    @property
    def class_names(self) -> list[str]:
        return list(CLASS_NAMES)

    @property
    def num_classes(self) -> int:
        return len(CLASS_NAMES)

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> tuple[Tensor, int, str]:
        index = self._check_index(index)
        self._ensure_rendered(index // _CHUNK)
        start = self._window_start(index)
        clip = self._store[index, :, start : start + self.frames].to(torch.float32).div_(255.0)
        return clip, int(self.labels[index]), self.clip_id(index)

    def clips(self, indices: Sequence[int] | Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Batch access: float32 clips (N, 3, T, H, W) and labels (N,) of ``indices`` (default: all)."""
        if indices is None:
            indices = range(self.num_clips)
        if isinstance(indices, Tensor):
            indices = indices.tolist()
        indices = [self._check_index(i) for i in indices]
        for chunk in sorted({i // _CHUNK for i in indices}):
            self._ensure_rendered(chunk)
        out = torch.empty((len(indices), 3, self.frames, self.size, self.size), dtype=torch.float32)
        for row, i in enumerate(indices):
            start = self._window_start(i)
            out[row] = self._store[i, :, start : start + self.frames]
        return out.div_(255.0), self.labels[indices]

    def clip_id(self, index: int) -> str:
        return f"{self.split}-s{self.seed}-{index:06d}"

    def set_epoch(self, epoch: int) -> None:
        """Select the random temporal windows of ``epoch`` (no effect without ``random_window``)."""
        self.epoch = _check_int("epoch", epoch, 0)
        self._window_cache.clear()

    def materialize(self) -> ProceduralActions:
        """Render every item now (with a progress bar); returns self."""
        from tqdm.auto import tqdm

        pending = [c for c in range(len(self._rendered)) if not self._rendered[c]]
        for chunk in tqdm(
            pending, desc=f"rendering {self.split} clips", unit="chunk", disable=not self.progress
        ):
            self._ensure_rendered(chunk)
        return self

    def __repr__(self) -> str:
        return (
            f"ProceduralActions(split={self.split!r}, size={self.size}, frames={self.frames}, "
            f"num_clips={self.num_clips}, seed={self.seed}, sequence_length={self.sequence_length}, "
            f"random_window={self.random_window})"
        )

    # ------------------------------------------------------------------ internals
    def _check_index(self, index: int) -> int:
        if isinstance(index, bool):
            raise TypeError("index must be an int, got bool")
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError(f"index must be an int, got {type(index).__name__}") from None
        if index < 0:
            index += self.num_clips
        if not 0 <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        return index

    def _ensure_rendered(self, chunk: int) -> None:
        if self._rendered[chunk]:
            return
        # Always render whole aligned chunks (padding past the end) so an item never depends on num_clips.
        indices = list(range(chunk * _CHUNK, (chunk + 1) * _CHUNK))
        labels = torch.tensor(indices) % len(CLASS_NAMES)
        sequences = _render_items(self.split, self.seed, indices, labels, self.size, self.sequence_length)
        keep = min(_CHUNK, self.num_clips - chunk * _CHUNK)
        if not self.random_window:
            centre = (self.sequence_length - self.frames) // 2
            sequences = sequences[:, :, centre : centre + self.frames]
        self._store[chunk * _CHUNK : chunk * _CHUNK + keep] = sequences[:keep]
        self._rendered[chunk] = True

    def _window_start(self, index: int) -> int:
        if not self.random_window:
            return 0
        start = self._window_cache.get(index)
        if start is None:
            generator = torch.Generator().manual_seed(
                window_seed(item_seed(self.seed, self.split, index), self.epoch)
            )
            start = int(torch.randint(0, self.sequence_length - self.frames + 1, (1,), generator=generator))
            self._window_cache[index] = start
        return start

    def _cache_name(self) -> str:
        return (
            f"procedural_actions_v{GENERATOR_VERSION}_{self.split}_seed{self.seed}_n{self.num_clips}"
            f"_s{self.size}_t{self.frames}_l{self.sequence_length}_{'rw' if self.random_window else 'cw'}"
            ".safetensors"
        )

    def _metadata(self) -> dict[str, str]:
        return {
            "generator_version": str(GENERATOR_VERSION),
            "split": self.split,
            "seed": str(self.seed),
            "num_clips": str(self.num_clips),
            "size": str(self.size),
            "frames": str(self.frames),
            "sequence_length": str(self.sequence_length),
            "random_window": str(self.random_window),
        }

    def _load_or_create_cache(self) -> None:
        assert self.cache_path is not None
        if self.cache_path.is_file():
            from safetensors import safe_open

            try:
                with safe_open(str(self.cache_path), framework="pt") as handle:
                    metadata = handle.metadata() or {}
                    clips = handle.get_tensor("clips")
                if (
                    metadata == self._metadata()
                    and clips.shape == self._store.shape
                    and clips.dtype == torch.uint8
                ):
                    self._store = clips
                    self._rendered[:] = True
                    return
            except Exception:  # unreadable or foreign file: regenerate and overwrite it
                pass
        self.materialize()
        atomic_save_tensors(
            self.cache_path, {"clips": self._store, "labels": self.labels}, metadata=self._metadata()
        )


_SPEC_KEYS = ("split", "num_clips", "size", "frames", "seed", "sequence_length", "random_window", "cache")


def build_synthetic_dataset(**spec: object) -> ProceduralActions:
    """Build a :class:`ProceduralActions` from a spec dict (e.g. a YAML config section).

    Valid keys: split, num_clips, size, frames, seed, sequence_length, random_window, cache.
    """
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise ValueError(f"unknown synthetic dataset key(s) {unknown}; valid keys: {', '.join(_SPEC_KEYS)}")
    return ProceduralActions(**spec)  # type: ignore[arg-type]


def describe() -> str:
    """Markdown table of the classes, their motion and their time-reversed partner."""
    partner = {a: b for a, b in REVERSED_PAIRS} | {b: a for a, b in REVERSED_PAIRS}
    lines = ["| label | class | motion | reversed class |", "|---|---|---|---|"]
    for label, (name, motion) in enumerate(zip(CLASS_NAMES, CLASS_MOTIONS, strict=True)):
        lines.append(f"| {label} | {name} | {motion} | {CLASS_NAMES[partner[label]]} |")
    return "\n".join(lines)
