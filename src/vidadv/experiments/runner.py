"""`vidadv attack`: run every (white-box model, attack, clip) of a config; resumable and shardable.

Output (in the config's output folder):
  run_config.json, config_hash.txt   the validated config and its hash (resume guard)
  adv/<whitebox>/<attack>/<clip>.safetensors
      tensor "adv" (C, T, H, W) in `save_dtype`, and header metadata "record": JSON with the clip id,
      label, the white-box model's clean and adversarial prediction and loss, the L-inf norm of the
      saved perturbation, the attack seed, the wall time per clip, the attack's structured settings
      (`attack_settings`: name, canonical spec, steps, eps, every resolved option, gradient evaluations),
      "budget" (eps, norm) and a "sha256" checksum (see `vidadv.experiments.runfiles`)
  attack_records.csv, attack_summary.json   written by rank 0 once every process is done; the summary's
      "attack_settings" maps each attack name to its settings (read by `vidadv ablation` and the cost
      frontier of `vidadv evaluate`), its "rows" give per (white-box, attack) the clips done, the total
      attack wall time ("attack_seconds") and the gradient evaluations per step

Every file is written atomically, so `kill -9` loses at most the clips in flight; rerunning the same
command skips finished files. The unit of work is a fixed batch of `batch_size` consecutive selected
clips attacked together with one seed derived from (seed, clip ids); batches are identical whatever
the number of processes, so a sharded run (torchrun) writes the same tensors as a single process.
Each attack is built once per white-box model and called for every batch with that batch's seed.
The run folder's records (run record, resume guard, per-clip records, summary) are `run_records`; this
module is the run loop and re-exports them.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from vidadv.attacks.core import NonFiniteGradientError
from vidadv.experiments.config import AttackSpec, ConfigError, ExperimentConfig, resolve_device
from vidadv.experiments.run_records import (
    RECORD_FIELDS,
    check_resume,
    format_attack_summary,
    read_record,
    recorded_attack_settings,
    summarize_attack_run,
    write_run_record,
)
from vidadv.experiments.runfiles import (
    Budget,
    adversarial_metadata,
    attack_budget,
    budget_tolerance,
    is_current,
)
from vidadv.experiments.runtime import (
    DEFAULT_FACTORIES,
    Factories,
    RunLayout,
    SelectedClip,
    batched,
    check_item,
    clip_seed,
    determinism,
    load_selection,
    selected_clips,
)
from vidadv.experiments.select import compute_selection
from vidadv.utils.distributed import (
    DistContext,
    all_gather_objects,
    barrier,
    finalize,
    init_distributed,
    shard,
)
from vidadv.utils.io import atomic_save_tensors, exclusive_lock, remove_stale_temporaries

__all__ = [
    "RECORD_FIELDS",
    "attack_settings",
    "check_resume",
    "format_attack_summary",
    "read_record",
    "recorded_attack_settings",
    "run_attack",
    "summarize_attack_run",
]


# ------------------------------------------------------------------------------------------------
# Work list
# ------------------------------------------------------------------------------------------------


def _work_list(
    config: ExperimentConfig, layout: RunLayout, clips: list[SelectedClip], resume: bool
) -> list[tuple[str, int, list[str]]]:
    """Pending jobs: (white-box label, batch number, attack names with a missing file in that batch)."""
    batches = batched(clips, config.batch_size)
    jobs: list[tuple[str, int, list[str]]] = []
    for whitebox in config.whitebox:
        for number, batch in enumerate(batches):
            todo = [
                attack.name
                for attack in config.attacks
                if not resume or any(not _is_done(config, layout, whitebox, attack, c) for c in batch)
            ]
            if todo:
                jobs.append((whitebox, number, todo))
    return jobs


def _is_done(
    config: ExperimentConfig, layout: RunLayout, whitebox: str, attack: AttackSpec, clip: SelectedClip
) -> bool:
    """A finished file of this (white-box, attack, clip) made with the attack's current budget (a file of
    another budget, e.g. left by `--force` after eps changed, is redone)."""
    path = layout.adv_path(whitebox, attack.name, clip.clip_id)
    return path.exists() and is_current(path, attack_budget(config, attack), config.config_hash())


def _load_batch(dataset: Any, batch: list[SelectedClip]) -> torch.Tensor:
    clips = []
    for clip_info in batch:
        clip, label, clip_id = check_item(dataset[clip_info.index], clip_info.index)
        if clip_id != clip_info.clip_id or label != clip_info.label:
            raise ValueError(
                f"dataset item {clip_info.index} is now ({clip_id!r}, label {label}) but selection.json says "
                f"({clip_info.clip_id!r}, label {clip_info.label}); the dataset changed: "
                "rerun `vidadv select --force`"
            )
        clips.append(clip)
    shapes = {tuple(c.shape) for c in clips}
    if len(shapes) > 1:
        raise ValueError(f"clips of one batch differ in shape {sorted(shapes)}; use batch_size: 1")
    return torch.stack(clips)


def _build_attack(
    config: ExperimentConfig,
    attack: AttackSpec,
    model: nn.Module,
    factories: Factories,
    seed: int,
    whitebox: str | None = None,
) -> Any:
    """Build one attack; a rejected spec/option becomes a ConfigError naming the attack."""
    options = config.attack_options(attack)
    options["seed"] = seed
    try:
        return factories.build_attack(attack.spec, model, **options)
    except (TypeError, ValueError) as err:
        on_model = f" on white-box model {whitebox!r}" if whitebox else ""
        raise ConfigError(
            f"attack {attack.name!r} ({attack.spec!r}){on_model} rejected its options {options}: {err}"
        ) from err


def _settings_value(value: Any) -> Any:
    """An option value as JSON: tensors and tuples become lists, modules their class name."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_settings_value(v) for v in value]
    if isinstance(value, nn.Module):
        return type(value).__name__
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return repr(value)


#: The attack's cost attributes recorded in its settings when it has them (`vidadv.attacks.core.Attack`).
COST_ATTRIBUTES = (
    "gradient_evaluations_per_step",
    "setup_gradient_evaluations",
    "gradient_evaluations_per_clip",
)


def attack_settings(config: ExperimentConfig, attack: AttackSpec, built: Any) -> dict[str, Any]:
    """The structured settings of a built attack, recorded with every clip it attacks.

    name, spec (canonical where the attack says it, e.g. "tt+mi" -> "mi+tt"), steps, eps, every option
    (the attack's resolved options, defaults included, when it exposes them as `options`; else the
    config's) and its cost as far as the attack reports it (`COST_ATTRIBUTES`: gradient evaluations per
    step, one-off setup evaluations, per clip). The per-batch seed is recorded separately.
    """
    resolved = getattr(built, "options", None)
    options = dict(resolved) if isinstance(resolved, Mapping) else config.attack_options(attack)
    options = {k: _settings_value(v) for k, v in options.items() if k not in ("seed", "progress")}
    spec = getattr(built, "spec", None)
    settings = {
        "name": attack.name,
        "spec": spec if isinstance(spec, str) else attack.spec,
        "steps": _settings_value(getattr(built, "steps", options.get("steps"))),
        "eps": _settings_value(getattr(built, "eps", options.get("eps"))),
        "options": options,
    }
    for key in COST_ATTRIBUTES:
        value = getattr(built, key, None)
        if isinstance(value, int) and not isinstance(value, bool):
            settings[key] = value
    return settings


def _attack_batch(
    attack: AttackSpec, attacker: Any, clean: torch.Tensor, labels: torch.Tensor, seed: int
) -> tuple[torch.Tensor, float, int | None]:
    """Adversarial clips (float32, CPU), the wall time of the attack and its gradient evaluations per step."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    adversarial = attacker(clean, labels, seed=seed)
    if clean.is_cuda:
        torch.cuda.synchronize(clean.device)
    elapsed = time.perf_counter() - start
    if not isinstance(adversarial, torch.Tensor) or adversarial.shape != clean.shape:
        shape = (
            tuple(adversarial.shape) if isinstance(adversarial, torch.Tensor) else type(adversarial).__name__
        )
        raise ValueError(
            f"attack {attack.name!r} returned {shape}, expected a tensor of shape {tuple(clean.shape)}"
        )
    evaluations = getattr(attacker, "gradient_evaluations_per_step", None)
    return adversarial.detach().float().cpu(), elapsed, evaluations if isinstance(evaluations, int) else None


@torch.no_grad()
def _predict_with_loss(
    model: nn.Module, clips: torch.Tensor, labels: torch.Tensor, device: torch.device, dtype: torch.dtype
) -> tuple[list[int], list[float]]:
    logits = model(clips.to(device=device, dtype=dtype)).float()
    losses = F.cross_entropy(logits, labels.to(logits.device), reduction="none")
    return logits.argmax(dim=1).cpu().tolist(), losses.cpu().tolist()


def _run_jobs(
    config: ExperimentConfig,
    ctx: DistContext,
    layout: RunLayout,
    clips: list[SelectedClip],
    jobs: list[tuple[str, int, list[str]]],
    resume: bool,
    factories: Factories,
    progress: bool,
) -> int:
    """Attack this rank's jobs; returns the number of files written."""
    device = resolve_device(config.device, ctx.local_rank if ctx.is_distributed else None)
    dtype, save_dtype = config.torch_dtype, config.torch_save_dtype
    batches = batched(clips, config.batch_size)
    dataset = factories.build_dataset(dict(config.dataset)) if jobs else None
    total = sum(len(batches[number]) * len(todo) for _, number, todo in jobs)
    bar = tqdm(total=total, desc="attack", unit="clip", disable=not (progress and ctx.is_main), smoothing=0.1)
    model: nn.Module | None = None
    model_label: str | None = None
    attackers: dict[str, Any] = {}
    settings: dict[str, dict[str, Any]] = {}
    written = 0
    for whitebox, number, todo in jobs:
        if whitebox != model_label:
            model, attackers = None, {}  # free the previous white-box model before loading the next
            model = factories.prepare_model(config.model(whitebox), device, dtype)
            model_label = whitebox
            # every attack built once per white-box model (each batch calls it with its own seed); building
            # them all now fails early, not hours later, if one cannot be built
            for attack in config.attacks:
                attackers[attack.name] = _build_attack(
                    config, attack, model, factories, config.seed, whitebox
                )
                settings[attack.name] = attack_settings(config, attack, attackers[attack.name])
        assert model is not None
        batch = batches[number]
        clean_cpu = _load_batch(dataset, batch)
        clean = clean_cpu.to(device=device, dtype=dtype)
        labels = torch.tensor([c.label for c in batch], dtype=torch.long, device=device)
        clean_preds, clean_losses = _predict_with_loss(model, clean_cpu, labels, device, dtype)
        seed = clip_seed(config.seed, [c.clip_id for c in batch])
        for attack_name in todo:
            attack = config.attack(attack_name)
            paths = [layout.adv_path(whitebox, attack.name, c.clip_id) for c in batch]
            done = [resume and _is_done(config, layout, whitebox, attack, c) for c in batch]
            if all(done):
                bar.update(len(batch))
                continue
            bar.set_postfix_str(f"{whitebox} / {attack.name}", refresh=False)
            try:
                adversarial, elapsed, evaluations = _attack_batch(
                    attack, attackers[attack.name], clean, labels, seed
                )
            except NonFiniteGradientError as err:
                named = ", ".join(f"{batch[i].clip_id!r} (dataset index {batch[i].index})" for i in err.clips)
                raise ValueError(
                    f"attack {attack.name!r} on white-box model {whitebox!r}, clip {named}: {err}"
                ) from err
            saved = adversarial.to(save_dtype)
            budget = attack_budget(config, attack)
            _check_adversarial(
                saved, clean_cpu, budget, budget_tolerance(config), batch, attack.name, whitebox
            )
            adv_preds, adv_losses = _predict_with_loss(model, saved.float(), labels, device, dtype)
            linf = (saved.float() - clean_cpu.float()).abs().flatten(1).amax(dim=1).tolist()
            for row, (clip_info, path) in enumerate(zip(batch, paths, strict=True)):
                if done[row]:
                    continue
                record = {
                    "whitebox": whitebox,
                    "attack": attack.name,
                    "spec": attack.spec,
                    "clip_id": clip_info.clip_id,
                    "index": clip_info.index,
                    "label": clip_info.label,
                    "clean_pred": clean_preds[row],
                    "adv_pred": adv_preds[row],
                    "clean_loss": _finite(clean_losses[row]),
                    "adv_loss": _finite(adv_losses[row]),
                    "linf": linf[row],
                    "time_s": elapsed / len(batch),
                    "seed": seed,
                    "batch": [c.clip_id for c in batch],
                    "rank": ctx.rank,
                    "gradient_evaluations_per_step": evaluations,
                    "config_hash": config.config_hash(),
                    "settings": settings[attack.name],
                }
                atomic_save_tensors(
                    path, {"adv": saved[row]}, adversarial_metadata(saved[row], record, budget)
                )
                written += 1
            bar.update(len(batch))
    bar.close()
    return written


def _check_adversarial(
    saved: torch.Tensor,
    clean: torch.Tensor,
    budget: Budget,
    tolerance: float,
    batch: list[SelectedClip],
    attack: str,
    whitebox: str,
) -> None:
    """Refuse to write an adversarial clip that is non-finite, leaves [0, 1] or exceeds its budget."""
    for row, clip_info in enumerate(batch):
        adv = saved[row].float()
        where = f"attack {attack!r} on white-box model {whitebox!r} returned for clip {clip_info.clip_id!r}"
        if not bool(torch.isfinite(adv).all()):
            raise ValueError(f"{where} a clip with NaN/Inf values")
        if float(adv.min()) < 0 or float(adv.max()) > 1:
            raise ValueError(
                f"{where} values in [{float(adv.min()):.8g}, {float(adv.max()):.8g}], outside [0, 1]"
            )
        distance = budget.distance(adv - clean[row].float())
        if not distance <= budget.eps + tolerance:
            raise ValueError(f"{where} a perturbation of size {distance:.6g}, over its budget {budget}")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


# ------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------


def run_attack(
    config: Any,
    force: bool = False,
    resume: bool = True,
    *,
    factories: Factories = DEFAULT_FACTORIES,
    progress: bool = True,
) -> int:
    """`vidadv attack CONFIG`: attack every selected clip; returns 0 when the run is complete.

    force: resume into a folder made with a different config. resume=False recomputes (and
    overwrites) every file. Under torchrun (WORLD_SIZE > 1) the work is sharded over the processes.
    factories: where models, the dataset and the attacks come from (tests inject stand-ins).
    """
    config = factories.load_config(config)
    layout = RunLayout.of(config.output_dir)
    previous = check_resume(config, layout, force)
    ctx = init_distributed(config.device)
    lock = exclusive_lock(layout.root, "vidadv attack") if ctx.is_main else contextlib.nullcontext()
    try:
        with lock, determinism(config.deterministic):
            clips, summary, written = _attack_all_ranks(
                config,
                ctx,
                layout,
                previous,
                resume,
                factories,
                progress,
            )
    finally:
        finalize(ctx)
    if summary is None:
        return 0
    print(f"run folder: {layout.root} (config hash {config.config_hash()[:12]})")
    print(f"written now: {written} files; {len(clips)} selected clips")
    print(format_attack_summary(summary))
    return 0 if summary["complete"] else 1


def _attack_all_ranks(
    config: ExperimentConfig,
    ctx: DistContext,
    layout: RunLayout,
    previous: dict[str, Any] | None,
    resume: bool,
    factories: Factories,
    progress: bool,
) -> tuple[list[SelectedClip], dict[str, Any] | None, int]:
    """The body of run_attack on every rank: selection, work list, sharded attacks, rank-0 summary."""
    if not layout.selection_json.exists():
        if config.selection != "auto":
            raise ConfigError(
                f"no clip selection in {layout.root}: run `vidadv select {config.source or 'CONFIG'}` first "
                "(or set selection: auto)"
            )
        compute_selection(config, ctx, factories=factories, progress=progress)
        barrier(ctx)
    selection = load_selection(layout)
    if selection.get("selection_hash") != config.selection_hash():
        raise ConfigError(
            f"{layout.selection_json} was made for a different dataset, model list or dtype; "
            "rerun `vidadv select --force` with this config"
        )
    clips = selected_clips(selection)
    if not clips:
        raise ValueError(f"{layout.selection_json} keeps no clips: nothing to attack")
    barrier(ctx)  # everyone has read the old state before rank 0 changes it
    jobs: list[tuple[str, int, list[str]]] = []
    if ctx.is_main:
        layout.root.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(layout.adv_dir)
        write_run_record(config, layout, previous)
        jobs = _work_list(config, layout, clips, resume)
    jobs = all_gather_objects(ctx, jobs)[0]  # rank 0's view of what is left, for every rank
    written = _run_jobs(
        config,
        ctx,
        layout,
        clips,
        shard(jobs, ctx),
        resume,
        factories,
        progress,
    )
    total_written = sum(all_gather_objects(ctx, written))
    summary = summarize_attack_run(config, layout, clips) if ctx.is_main else None
    barrier(ctx)
    return clips, summary, total_written
