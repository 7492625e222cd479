"""vidadv.models: the attacked video networks and how to load them.

- `build_network(name, num_classes=400)`: bare network with gluoncv's state-dict layout (normalized input).
- `load_model(name, checkpoint=..., num_classes=..., mean=..., std=..., device=...)`: ready classifier
  (weights, normalization, eval mode) taking clips (N, C, T, H, W) in [0, 1]; also the zoo names.
- `VideoClassifier(network, mean, std, input_layout=...)`: wraps any PyTorch video model.
- `I3DNonLocal`: the I3D non-local ResNet family (full-size and small variants).
- `InceptionI3d`, `load_i3d_kinetics400(checkpoint)`: DeepMind's Kinetics-400 I3D (`load_model("i3d", ...)`).
"""

from vidadv.models.checkpoint import (
    available_models,
    build_network,
    load_model,
    load_network_state,
    read_checkpoint,
    save_checkpoint,
)
from vidadv.models.common import ResidualBlock, residual_blocks
from vidadv.models.i3d import I3DNonLocal, NonLocalBlock
from vidadv.models.i3d_checkpoint import load_i3d_kinetics400
from vidadv.models.inception_i3d import InceptionI3d, build_i3d_kinetics400
from vidadv.models.registry import available_networks
from vidadv.models.wrapper import IMAGENET_MEAN, IMAGENET_STD, VideoClassifier

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "I3DNonLocal",
    "InceptionI3d",
    "NonLocalBlock",
    "ResidualBlock",
    "VideoClassifier",
    "available_models",
    "available_networks",
    "build_i3d_kinetics400",
    "build_network",
    "load_i3d_kinetics400",
    "load_model",
    "load_network_state",
    "read_checkpoint",
    "residual_blocks",
    "save_checkpoint",
]
