"""vidadv.training: training the embedded zoo models (recipe, augmentation, loop, accuracy, `vidadv zoo`).

A layer above `vidadv.attacks`: it uses `vidadv.utils`, `vidadv.data` and `vidadv.models`.
"""

from vidadv.training.accuracy import evaluate_accuracy, shifted_accuracy
from vidadv.training.loop import TrainingResult, train_zoo_model
from vidadv.training.recipe import FLIP_LABEL_SWAPS, Recipe, augment_clips, flip_label_map, one_cycle
from vidadv.training.zoo import print_zoo, run_train

__all__ = [
    "FLIP_LABEL_SWAPS",
    "Recipe",
    "TrainingResult",
    "augment_clips",
    "evaluate_accuracy",
    "flip_label_map",
    "one_cycle",
    "print_zoo",
    "run_train",
    "shifted_accuracy",
    "train_zoo_model",
]
