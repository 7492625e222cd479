"""vidadv.models: the attacked video networks and how to load them.

- `load_model(name, checkpoint=..., num_classes=..., mean=..., std=..., device=...)`: ready classifier
  (weights, normalization, eval mode) taking clips (N, C, T, H, W) in [0, 1].
- `build_network(name, num_classes=None, generator=None)`: bare network (normalized input).
- `available_models()`, `get_model_entry(name)`, `register_model(ModelEntry(...))`: the catalogue
  (`vidadv.models.catalogue`): gluoncv layouts, their aliases and the embedded zoo.
- `VideoClassifier(network, mean, std, input_layout=...)`: wraps any PyTorch video model.
- `I3DNonLocal`, `SlowFast`, `TPN`: the three families, built from the shared `Bottleneck3d`.
- `InceptionI3d`, `load_i3d_kinetics400(checkpoint)`: DeepMind's Kinetics-400 I3D (`load_model("i3d", ...)`).
"""

from vidadv.models.catalogue import (
    ModelEntry,
    available_models,
    build_network,
    get_model_entry,
    load_model,
    model_entries,
    register_model,
    wrap_network,
)
from vidadv.models.checkpoint import load_network_state, read_checkpoint, save_checkpoint
from vidadv.models.common import Bottleneck3d, ResidualBlock, residual_blocks
from vidadv.models.i3d import I3DNonLocal, NonLocalBlock
from vidadv.models.i3d_checkpoint import load_i3d_kinetics400
from vidadv.models.inception_i3d import InceptionI3d, build_i3d_kinetics400
from vidadv.models.slowfast import SlowFast
from vidadv.models.tpn import TPN
from vidadv.models.wrapper import IMAGENET_MEAN, IMAGENET_STD, VideoClassifier

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Bottleneck3d",
    "I3DNonLocal",
    "ModelEntry",
    "InceptionI3d",
    "NonLocalBlock",
    "ResidualBlock",
    "SlowFast",
    "TPN",
    "VideoClassifier",
    "available_models",
    "build_network",
    "get_model_entry",
    "build_i3d_kinetics400",
    "load_i3d_kinetics400",
    "load_model",
    "load_network_state",
    "model_entries",
    "read_checkpoint",
    "register_model",
    "residual_blocks",
    "save_checkpoint",
    "wrap_network",
]
