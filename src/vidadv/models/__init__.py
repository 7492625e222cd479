"""vidadv.models: the attacked video networks and how to load them.

- `build_network(name, num_classes=400)`: bare network with gluoncv's state-dict layout (normalized input).
- `load_model(name, checkpoint=..., num_classes=..., mean=..., std=..., device=...)`: ready classifier
  (weights, normalization, eval mode) taking clips (N, C, T, H, W) in [0, 1]; also the zoo names.
- `VideoClassifier(network, mean, std, input_layout=...)`: wraps any PyTorch video model.
- `I3DNonLocal`: the I3D non-local ResNet family (full-size and small variants).
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
from vidadv.models.registry import available_networks
from vidadv.models.wrapper import IMAGENET_MEAN, IMAGENET_STD, VideoClassifier

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "I3DNonLocal",
    "NonLocalBlock",
    "ResidualBlock",
    "VideoClassifier",
    "available_models",
    "available_networks",
    "build_network",
    "load_model",
    "load_network_state",
    "read_checkpoint",
    "residual_blocks",
    "save_checkpoint",
]
