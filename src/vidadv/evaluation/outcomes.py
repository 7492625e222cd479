"""The outcomes table of a transfer experiment and the pure ASR functions over it.

`Outcomes` holds one row per (white-box model, attack, clip, evaluated model): the clip's label, the
model's clean and adversarial prediction, the target (targeted attacks) and whether the model is
*fooled* (untargeted: the prediction differs from the label; targeted: it equals the target). "Fooled" is
decided once, when the table is built from predictions; every number below is a function of it.

Denominators. `SELECTED`: the clips `vidadv select` kept (every model classifies them correctly) and that
were attacked; this is vidadv's attack success rate (ASR). `LISTED`: additionally the clips of the list
that the selection dropped because some model misclassified them clean. They were not attacked, so their
clean prediction stands in for the adversarial one: a success for each model that misclassified them, a
failure for the others. That is 100 - top-1 accuracy over all listed clips, the number the released TT
evaluation scripts print (they attack every listed clip too, so their number is usually higher).

Functions: `asr_matrix` (per-model ASR), `blackbox_fractions` / `blackbox_cell` / `table1` (the TT
paper's average black-box ASR with a bootstrap interval over clips; `overall_blackbox_values`, its
per-clip values averaged over the white-box models), `paired_differences`
(ASR(A) - ASR(B) on the same clips, paired bootstrap interval and exact McNemar test) and
`direction_differences` (the same difference pooled by transfer direction between model groups, e.g.
CNN -> transformer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vidadv.evaluation.paper import paper_number
from vidadv.evaluation.report import AsrMatrix
from vidadv.utils.stats import (
    Interval,
    bootstrap_mean_ci,
    mcnemar,
    mcnemar_counts,
    paired_bootstrap_diff,
)

SELECTED = "selected"
LISTED = "listed"
DENOMINATORS = (SELECTED, LISTED)

#: Row kinds: an attacked (selected) clip, or a listed clip dropped because a model misclassified it clean.
ATTACKED = "attacked"
CLEAN_MISCLASSIFIED = "misclassified clean"

ItemKey = tuple[str, str, str]  # (white-box, attack, clip id)


@dataclass(frozen=True)
class Outcome:
    """One (white-box, attack, clip, model) cell of the outcomes table."""

    whitebox: str
    attack: str
    clip_id: str
    model: str
    label: int
    clean_pred: int | None  # None: not recorded
    adv_pred: int | None  # None: the clip was not attacked (kind CLEAN_MISCLASSIFIED)
    fooled: bool
    target: int | None = None
    kind: str = ATTACKED


def decide_fooled(label: int, pred: int, target: int | None = None) -> bool:
    """Untargeted: the prediction differs from the label; targeted: it equals the target."""
    return pred == target if target is not None else pred != label


@dataclass(frozen=True)
class DroppedClip:
    """A listed clip the selection dropped because some model misclassified it: its clean predictions."""

    clip_id: str
    label: int
    clean_preds: Mapping[str, int]


@dataclass(frozen=True)
class Outcomes:
    """The outcomes table (see the module docstring).

    `models`, `whiteboxes` and `attacks` give the table order (a config's order); `rows` keep the order of
    the predictions they were built from (white-box, attack, then clip order).
    """

    models: tuple[str, ...]
    whiteboxes: tuple[str, ...]
    attacks: tuple[str, ...]
    rows: tuple[Outcome, ...]
    _index: dict[str, dict[ItemKey, dict[str, Outcome]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def items(self, denominator: str = SELECTED) -> dict[ItemKey, dict[str, Outcome]]:
        """{(white-box, attack, clip id): {model: outcome}} in row order, for one denominator."""
        if denominator not in DENOMINATORS:
            raise ValueError(f"denominator must be one of {', '.join(DENOMINATORS)}, got {denominator!r}")
        if denominator not in self._index:
            index: dict[ItemKey, dict[str, Outcome]] = {}
            for row in self.rows:
                if denominator == SELECTED and row.kind != ATTACKED:
                    continue
                index.setdefault((row.whitebox, row.attack, row.clip_id), {})[row.model] = row
            self._index[denominator] = index
        return self._index[denominator]

    def clip_ids(self, whitebox: str, attack: str, denominator: str = SELECTED) -> list[str]:
        """The clips with outcomes for (white-box, attack), in row order."""
        return [key[2] for key in self.items(denominator) if key[0] == whitebox and key[1] == attack]

    @property
    def has_listed(self) -> bool:
        """True when the table holds listed-but-not-attacked clips (the LISTED denominator differs)."""
        return any(row.kind != ATTACKED for row in self.rows)

    def blackbox_models(self, whitebox: str) -> list[str]:
        return [m for m in self.models if m != whitebox]


def build_outcomes(
    predictions: Mapping[ItemKey, Mapping[str, int]],
    labels: Mapping[str, int],
    models: Sequence[str],
    whiteboxes: Sequence[str],
    attacks: Sequence[str],
    *,
    clean_preds: Mapping[str, Mapping[str, int]] | None = None,
    targets: Mapping[ItemKey, int] | None = None,
    dropped: Sequence[DroppedClip] = (),
) -> Outcomes:
    """The outcomes table from predictions {(white-box, attack, clip id): {model: predicted class}}.

    labels: clip id -> true class; clean_preds: clip id -> {model: clean prediction} where known;
    targets: target class of targeted items; dropped: listed clips not attacked (LISTED denominator), added
    for every (white-box, attack) that has predictions.
    """
    rows: list[Outcome] = []
    pairs: list[tuple[str, str]] = []
    for (whitebox, attack, clip_id), preds in predictions.items():
        if clip_id not in labels:
            raise ValueError(f"clip {clip_id!r} has predictions but no label")
        missing = [m for m in models if m not in preds]
        if missing:
            raise ValueError(f"({whitebox}, {attack}, {clip_id}) lacks predictions of {missing}")
        if (whitebox, attack) not in pairs:
            pairs.append((whitebox, attack))
        label = labels[clip_id]
        target = targets.get((whitebox, attack, clip_id)) if targets else None
        clean = (clean_preds or {}).get(clip_id, {})
        for model in models:
            pred = int(preds[model])
            rows.append(
                Outcome(
                    whitebox,
                    attack,
                    clip_id,
                    model,
                    label,
                    clean.get(model),
                    pred,
                    decide_fooled(label, pred, target),
                    target,
                )
            )
    for whitebox, attack in pairs:
        for clip in dropped:
            for model in models:
                pred = int(clip.clean_preds[model])
                rows.append(
                    Outcome(
                        whitebox,
                        attack,
                        clip.clip_id,
                        model,
                        clip.label,
                        pred,
                        None,
                        decide_fooled(clip.label, pred),
                        None,
                        CLEAN_MISCLASSIFIED,
                    )
                )
    return Outcomes(tuple(models), tuple(whiteboxes), tuple(attacks), tuple(rows))


# ------------------------------------------------------------------------------------------------
# ASR
# ------------------------------------------------------------------------------------------------


def asr_matrix(outcomes: Outcomes, denominator: str = SELECTED) -> AsrMatrix:
    """Per (white-box, attack) with outcomes, in table order: each model's ASR and the clip count."""
    records = (
        {
            "whitebox": o.whitebox,
            "attack": o.attack,
            "clip_id": o.clip_id,
            "model": o.model,
            "fooled": o.fooled,
        }
        for o in outcome_records(outcomes, denominator)
    )
    matrix = AsrMatrix.from_outcomes(records, models=outcomes.models)
    order = {
        (wb, attack): i
        for i, (wb, attack) in enumerate((wb, a) for wb in outcomes.whiteboxes for a in outcomes.attacks)
    }
    rows = sorted(matrix.rows, key=lambda row: order.get((row.whitebox, row.attack), len(order)))
    return AsrMatrix(matrix.models, tuple(rows))


def blackbox_fractions(outcomes: Outcomes, denominator: str = SELECTED) -> dict[ItemKey, float]:
    """Per (white-box, attack, clip): the fraction of black-box models (all but the white-box) fooled."""
    fractions = {}
    for (whitebox, attack, clip_id), per_model in outcomes.items(denominator).items():
        others = outcomes.blackbox_models(whitebox)
        if others:
            fractions[(whitebox, attack, clip_id)] = sum(per_model[m].fooled for m in others) / len(others)
    return fractions


@dataclass(frozen=True)
class BlackboxCell:
    """One (white-box, attack): each black-box model's ASR, and their average with a bootstrap interval."""

    whitebox: str
    attack: str
    n_clips: int
    asr: Mapping[str, float]
    interval: Interval | None  # None without clips (or without black-box models)

    @property
    def average(self) -> float | None:
        return None if self.interval is None else self.interval.estimate


def blackbox_cell(
    outcomes: Outcomes,
    whitebox: str,
    attack: str,
    *,
    n_boot: int,
    seed: int,
    denominator: str = SELECTED,
) -> BlackboxCell:
    """The average black-box ASR of one (white-box, attack): mean over clips of the share of black-box
    models fooled, with a 95 % bootstrap interval resampling clips."""
    others = outcomes.blackbox_models(whitebox)
    items = outcomes.items(denominator)
    fooled: dict[str, list[int]] = {m: [] for m in others}
    fractions: list[float] = []
    for clip_id in outcomes.clip_ids(whitebox, attack, denominator):
        per_model = items[(whitebox, attack, clip_id)]
        flags = [int(per_model[m].fooled) for m in others]
        for model, flag in zip(others, flags, strict=True):
            fooled[model].append(flag)
        if others:
            fractions.append(sum(flags) / len(others))
    if not fractions:
        return BlackboxCell(whitebox, attack, 0, {}, None)
    interval = bootstrap_mean_ci(fractions, n_boot=n_boot, seed=seed)
    asr = {m: sum(v) / len(v) for m, v in fooled.items()}
    return BlackboxCell(whitebox, attack, len(fractions), asr, interval)


def overall_blackbox_values(
    fractions: Mapping[ItemKey, float], attack: str, whiteboxes: Sequence[str]
) -> list[float]:
    """Per clip of `attack` (in order of first appearance, white-box models in `whiteboxes` order): the
    mean over the white-box models that attacked it of the share of black-box models fooled
    (`blackbox_fractions`). Table 1's "overall" column and the cost frontier are means of these values."""
    per_clip: dict[str, list[float]] = {}
    for whitebox in whiteboxes:
        for (item_whitebox, item_attack, clip_id), value in fractions.items():
            if item_whitebox == whitebox and item_attack == attack:
                per_clip.setdefault(clip_id, []).append(value)
    return [sum(values) / len(values) for values in per_clip.values()]


def _interval_dict(interval: Interval | None) -> dict[str, float]:
    return {} if interval is None else {"asr": interval.estimate, "lo": interval.lo, "hi": interval.hi}


def table1(
    outcomes: Outcomes,
    *,
    n_boot: int,
    seed: int,
    paper_keys: Mapping[str, str | None] | None = None,
    paper_dataset: str | None = None,
    denominator: str = SELECTED,
) -> list[dict[str, Any]]:
    """Table-1-style rows: per attack, the black-box average ASR per white-box model and over all of them.

    Each comes with a 95 % bootstrap interval resampling clips. "overall" averages, per clip, over the
    white-box models, then over clips. `paper` is the published number where the attack has one
    (`paper_keys`: attack -> key of `PAPER_NUMBERS`).
    """
    fractions = blackbox_fractions(outcomes, denominator)
    rows = []
    for attack in outcomes.attacks:
        key = (paper_keys or {}).get(attack)
        row: dict[str, Any] = {"attack": attack, "paper_key": key, "per_whitebox": {}}
        for whitebox in outcomes.whiteboxes:
            values = [v for item, v in fractions.items() if item[0] == whitebox and item[1] == attack]
            interval = bootstrap_mean_ci(values, n_boot=n_boot, seed=seed) if values else None
            row["per_whitebox"][whitebox] = {"n": len(values), **_interval_dict(interval)}
        overall_values = overall_blackbox_values(fractions, attack, outcomes.whiteboxes)
        overall = bootstrap_mean_ci(overall_values, n_boot=n_boot, seed=seed) if overall_values else None
        row["overall"] = {"n": len(overall_values), **_interval_dict(overall)}
        row["paper"] = paper_number(paper_dataset, key)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------
# Paired differences
# ------------------------------------------------------------------------------------------------


def _paired_summary(a: Sequence[float], b: Sequence[float], n_boot: int, seed: int) -> dict[str, Any]:
    """n, mean of A, mean of B, and A - B with its 95 % paired bootstrap interval (lo, hi)."""
    interval = paired_bootstrap_diff(a, b, n_boot=n_boot, seed=seed)
    return {
        "n": len(a),
        "asr_a": sum(a) / len(a),
        "asr_b": sum(b) / len(b),
        "diff": interval.estimate,
        "lo": interval.lo,
        "hi": interval.hi,
    }


def _difference_row(
    whitebox: str, model: str, a: Sequence[float], b: Sequence[float], n_boot: int, seed: int, single: bool
) -> dict[str, Any]:
    only_a, only_b = mcnemar_counts(a, b) if single else (None, None)  # type: ignore[arg-type]
    return {
        "whitebox": whitebox,
        "model": model,
        **_paired_summary(a, b, n_boot, seed),
        "only_a": only_a,
        "only_b": only_b,
        "p_mcnemar": mcnemar(a, b) if single else None,  # type: ignore[arg-type]
    }


BLACKBOX_AVERAGE = "black-box average"


def paired_differences(
    outcomes: Outcomes,
    attack_a: str,
    attack_b: str,
    whiteboxes: Sequence[str],
    *,
    n_boot: int,
    seed: int,
    clip_order: Sequence[str] | None = None,
    denominator: str = SELECTED,
) -> list[dict[str, Any]]:
    """Paired comparison rows: per (white-box, black-box model), per white-box average, overall average.

    diff = ASR(A) - ASR(B) on the clips both attacks have, 95 % paired bootstrap interval (resampling
    clips), and for single models the exact McNemar test on the discordant clips. clip_order: the order of
    the clips (default: row order of attack A).
    """
    items = outcomes.items(denominator)
    rows: list[dict[str, Any]] = []
    overall_a: dict[str, list[float]] = {}
    overall_b: dict[str, list[float]] = {}
    for whitebox in whiteboxes:
        order = clip_order if clip_order is not None else outcomes.clip_ids(whitebox, attack_a, denominator)
        clip_ids = [c for c in order if (whitebox, attack_a, c) in items and (whitebox, attack_b, c) in items]
        if not clip_ids:
            continue
        others = outcomes.blackbox_models(whitebox)

        def fooled(attack: str, model: str, clip_id: str, wb: str = whitebox) -> int:
            return int(items[(wb, attack, clip_id)][model].fooled)

        for model in others:
            a = [fooled(attack_a, model, c) for c in clip_ids]
            b = [fooled(attack_b, model, c) for c in clip_ids]
            rows.append(_difference_row(whitebox, model, a, b, n_boot, seed, single=True))
        if not others:
            continue
        avg_a = [sum(fooled(attack_a, m, c) for m in others) / len(others) for c in clip_ids]
        avg_b = [sum(fooled(attack_b, m, c) for m in others) / len(others) for c in clip_ids]
        rows.append(_difference_row(whitebox, BLACKBOX_AVERAGE, avg_a, avg_b, n_boot, seed, single=False))
        for clip_id, value_a, value_b in zip(clip_ids, avg_a, avg_b, strict=True):
            overall_a.setdefault(clip_id, []).append(value_a)
            overall_b.setdefault(clip_id, []).append(value_b)
    if len(whiteboxes) > 1 and overall_a:
        a = [sum(v) / len(v) for v in overall_a.values()]
        b = [sum(overall_b[c]) / len(overall_b[c]) for c in overall_a]
        rows.append(_difference_row("all", BLACKBOX_AVERAGE, a, b, n_boot, seed, single=False))
    return rows


def transfer_directions(
    groups: Mapping[str, str], whiteboxes: Sequence[str], models: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """(white-box, black-box model) pairs per transfer direction "G -> H" between the groups of `groups`
    (model -> group, e.g. "cnn" / "transformer"), in group order of first appearance in `models`.

    A pair never has the same model twice; directions without a pair are left out.
    """
    unknown = [m for m in (*whiteboxes, *models) if m not in groups]
    if unknown:
        raise ValueError(f"no group given for model(s) {', '.join(dict.fromkeys(unknown))}")
    order = list(dict.fromkeys(groups[m] for m in models))
    directions: dict[str, list[tuple[str, str]]] = {}
    for source in order:
        for destination in order:
            pairs = [
                (whitebox, model)
                for whitebox in whiteboxes
                if groups[whitebox] == source
                for model in models
                if model != whitebox and groups[model] == destination
            ]
            if pairs:
                directions[f"{source} -> {destination}"] = pairs
    return directions


def direction_differences(
    outcomes: Outcomes,
    attack_a: str,
    attack_b: str,
    groups: Mapping[str, str],
    *,
    n_boot: int,
    seed: int,
    whiteboxes: Sequence[str] | None = None,
    clip_order: Sequence[str] | None = None,
    denominator: str = SELECTED,
) -> list[dict[str, Any]]:
    """ASR(A) - ASR(B) per transfer direction between model groups (see `transfer_directions`), over the
    white-box models `whiteboxes` (default: all of the table's).

    Per clip, the share of the direction's (white-box, black-box) pairs fooled, for A and for B (only
    clips that every white-box model of the direction attacked with both attacks; white-box models
    without any clip of A or B, e.g. not yet attacked in a partial run, are left out); the difference of the
    means over clips with a 95 % paired bootstrap interval resampling clips. Rows: direction, n clips,
    pairs, asr_a, asr_b, diff, lo, hi.
    """
    items = outcomes.items(denominator)
    rows: list[dict[str, Any]] = []
    attacked = {(whitebox, attack) for whitebox, attack, _ in items}
    whiteboxes_with_clips = [
        w
        for w in (outcomes.whiteboxes if whiteboxes is None else whiteboxes)
        if (w, attack_a) in attacked and (w, attack_b) in attacked
    ]
    directions = transfer_directions(groups, whiteboxes_with_clips, outcomes.models)
    for direction, pairs in directions.items():
        sources = list(dict.fromkeys(whitebox for whitebox, _ in pairs))
        order = clip_order if clip_order is not None else outcomes.clip_ids(sources[0], attack_a, denominator)
        clip_ids = [
            c
            for c in order
            if all((w, attack, c) in items for w in sources for attack in (attack_a, attack_b))
        ]
        if not clip_ids:
            continue

        def share(attack: str, clip_id: str, pairs: list[tuple[str, str]] = pairs) -> float:
            return sum(int(items[(w, attack, clip_id)][m].fooled) for w, m in pairs) / len(pairs)

        a = [share(attack_a, c) for c in clip_ids]
        b = [share(attack_b, c) for c in clip_ids]
        summary = _paired_summary(a, b, n_boot, seed)
        rows.append({"direction": direction, "n": summary.pop("n"), "pairs": len(pairs), **summary})
    return rows


def outcome_records(outcomes: Outcomes, denominator: str = SELECTED) -> Iterable[Outcome]:
    """The rows of one denominator, in table order."""
    return (row for per_model in outcomes.items(denominator).values() for row in per_model.values())
