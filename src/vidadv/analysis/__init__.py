"""vidadv.analysis: the temporal-pattern analysis of the TT paper (Figure 2).

Frame importance per clip and model (Grad-CAM, zero-padding, mean-padding; `importance`), Spearman rank
correlation between models (`correlation`) and heatmaps (`plots`). The `vidadv analyze` command is
`vidadv.experiments.analyze`; Grad-CAM itself is `vidadv.models.gradcam`.
"""

from vidadv.analysis.correlation import (
    PairwiseSpearman,
    average_ranks,
    mean_off_diagonal,
    pairwise_spearman,
    spearman_correlation,
)
from vidadv.analysis.importance import (
    GRADCAM_TEMPORAL_MAPPINGS,
    IMPORTANCE_METHODS,
    MEAN_PADDING_BOUNDARIES,
    frame_importance,
    gradcam_importance,
    map_to_input_frames,
    mean_padding_importance,
    occlusion_importance,
    zero_padding_importance,
)
from vidadv.analysis.plots import correlation_heatmap_png

__all__ = [
    "GRADCAM_TEMPORAL_MAPPINGS",
    "IMPORTANCE_METHODS",
    "MEAN_PADDING_BOUNDARIES",
    "PairwiseSpearman",
    "average_ranks",
    "correlation_heatmap_png",
    "frame_importance",
    "gradcam_importance",
    "map_to_input_frames",
    "mean_off_diagonal",
    "mean_padding_importance",
    "occlusion_importance",
    "pairwise_spearman",
    "spearman_correlation",
    "zero_padding_importance",
]
