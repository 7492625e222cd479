"""The zoo training loop: one model (a zoo CNN or a zoo transformer) trained from scratch with the recipe."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from vidadv.data.synthetic import CLASS_NAMES
from vidadv.models.catalogue import wrap_network
from vidadv.models.wrapper import VideoClassifier
from vidadv.models.zoo import ZOO_SPECS, build_zoo_network, check_zoo_name
from vidadv.models.zoo_transformers import (
    TRANSFORMER_ZOO_SPECS,
    build_transformer_network,
    no_weight_decay,
    wrap_transformer_network,
)
from vidadv.training.accuracy import evaluate_accuracy
from vidadv.training.recipe import Recipe, augment_clips, flip_label_map, one_cycle, parameter_groups

__all__ = ["TrainingResult", "default_seed", "train_zoo_model"]


@dataclass
class TrainingResult:
    """What one training run produced: the network, the classifier wrapping it (clips in [0, 1]), its
    val-accuracy curve and the wall time."""

    network: nn.Module
    classifier: VideoClassifier | None = None
    val_curve: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    final_loss: float = float("nan")


def _loss(
    network: nn.Module, clips: torch.Tensor, labels: torch.Tensor, recipe: Recipe
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits) of a normalized batch; TPN adds its auxiliary head's loss (deep supervision)."""
    if hasattr(network, "forward_with_aux") and recipe.aux_loss_weight > 0:
        logits, aux_logits = network.forward_with_aux(clips)
        aux = F.cross_entropy(aux_logits, labels, label_smoothing=recipe.label_smoothing)
        main = F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)
        return main + recipe.aux_loss_weight * aux, logits
    logits = network(clips)
    return F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing), logits


@dataclass(frozen=True)
class _Trainee:
    """What the loop trains: the network, its classifier, how a clip batch reaches the network, the class
    count and the names of parameters without weight decay."""

    network: nn.Module
    classifier: VideoClassifier
    network_input: Callable[[torch.Tensor], Any]
    num_classes: int
    no_decay: frozenset[str]


def _trainee(name: str, seed: int) -> _Trainee:
    """A freshly initialized zoo CNN (input: normalized clips) or zoo transformer (input: the classifier's
    (N, T, C, H, W) layout; no decay on class token, position and time embeddings)."""
    if name in TRANSFORMER_ZOO_SPECS:
        network = build_transformer_network(name, seed=seed)
        classifier = wrap_transformer_network(network)
        return _Trainee(
            network,
            classifier,
            classifier.network_input,
            network.num_classes,
            frozenset(no_weight_decay(network)),
        )
    network = build_zoo_network(name, seed=seed)
    classifier = wrap_network(name, network)
    return _Trainee(
        network, classifier, classifier.normalize, ZOO_SPECS[name].constructor["num_classes"], frozenset()
    )


def default_seed(name: str) -> int:
    """The seed of zoo model `name` (CNN or transformer) from its spec."""
    if name in TRANSFORMER_ZOO_SPECS:
        return TRANSFORMER_ZOO_SPECS[name].seed
    return ZOO_SPECS[check_zoo_name(name)].seed


def train_zoo_model(
    name: str,
    recipe: Recipe,
    train_set,
    val_set=None,
    seed: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Train zoo model `name` from scratch with `recipe` on `train_set` (a `ProceduralActions` train split).

    `seed` (default: the spec's) seeds the initialization, the batch order and the augmentation. The
    training set's random temporal windows change every epoch (`set_epoch`). Validation accuracy on
    `val_set` is measured every `recipe.eval_every` steps and at the end (monitoring only).
    """
    seed = default_seed(name) if seed is None else seed
    if len(train_set) < recipe.batch_size:
        raise ValueError(
            f"the training set ({len(train_set)} clips) is smaller than one batch ({recipe.batch_size})"
        )
    generator = torch.Generator().manual_seed(seed + 1_000_003)
    trainee = _trainee(name, seed)
    if len(CLASS_NAMES) != trainee.num_classes:
        raise ValueError(
            f"the synthetic dataset has {len(CLASS_NAMES)} classes but {name} is built for "
            f"{trainee.num_classes}"
        )
    network, classifier = trainee.network, trainee.classifier
    flip_labels = flip_label_map(CLASS_NAMES)
    optimizer = torch.optim.AdamW(
        parameter_groups(network, recipe.weight_decay, no_decay=trainee.no_decay),
        lr=recipe.lr,
        betas=recipe.betas,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: one_cycle(step, recipe.steps, recipe.warmup_fraction)
    )
    result = TrainingResult(network=network, classifier=classifier)
    batches_per_epoch = len(train_set) // recipe.batch_size
    order: list[torch.Tensor] = []
    epoch = -1
    running_loss = running_accuracy = float("nan")
    start_time = time.perf_counter()
    network.train()
    bar = tqdm(range(recipe.steps), desc=f"training {name}", unit="step", disable=not progress)
    for step in bar:
        if not order:
            epoch += 1
            train_set.set_epoch(epoch)
            permutation = torch.randperm(len(train_set), generator=generator)
            order = list(permutation[: batches_per_epoch * recipe.batch_size].split(recipe.batch_size))
        clips, labels = train_set.clips(order.pop(0))
        clips, labels = augment_clips(clips, labels, generator, recipe, flip_labels)
        loss, logits = _loss(network, trainee.network_input(clips), labels, recipe)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(network.parameters(), recipe.grad_clip)
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        batch_accuracy = float((logits.detach().argmax(dim=1) == labels).float().mean())
        running_loss = value if math.isnan(running_loss) else 0.95 * running_loss + 0.05 * value
        running_accuracy = (
            batch_accuracy
            if math.isnan(running_accuracy)
            else 0.95 * running_accuracy + 0.05 * batch_accuracy
        )
        postfix = {"loss": f"{running_loss:.3f}", "train acc": f"{running_accuracy:.3f}", "epoch": epoch}
        is_last = step + 1 == recipe.steps
        if val_set is not None and ((step + 1) % recipe.eval_every == 0 or is_last):
            accuracy = evaluate_accuracy(classifier, val_set)[0]
            result.val_curve.append((step + 1, accuracy))
            if log is not None:
                log(
                    f"{name} step {step + 1}/{recipe.steps} loss {running_loss:.3f} train acc "
                    f"{running_accuracy:.3f} val acc {accuracy:.3f} "
                    f"({time.perf_counter() - start_time:.0f} s)"
                )
        if result.val_curve:
            postfix["val"] = f"{result.val_curve[-1][1]:.3f}"
        bar.set_postfix(postfix)
    classifier.eval()
    result.seconds = time.perf_counter() - start_time
    result.final_loss = running_loss
    return result
