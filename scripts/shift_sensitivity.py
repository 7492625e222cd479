"""How much a model's output and loss gradient change when its input clip is cyclically shifted in time.

For the selected clips of a run and each of its white-box models, and each temporal shift s in +-1..L
(TT's shifts): the share of clips whose predicted class is unchanged under the shift, the relative change
of the logits ||f(roll(x, s)) - f(x)|| / ||f(x)||, and the cosine similarity between the loss gradient at
the shifted clip, shifted back, and the gradient at x. TT (Wei et al.) averages exactly those shifted-back
gradients, so where the cosine is near 1 TT's gradient is the plain gradient and TT cannot change the
attack (docs/results.md section 7).

    python scripts/shift_sensitivity.py RUN_DIR [--clips 60] [--shift-length 7] [--models timesformer-s ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidadv.attacks import roll_frames
from vidadv.data import build_dataset
from vidadv.experiments.runtime import RunLayout, load_selection, read_run_config, selected_clips
from vidadv.models import load_model


def shift_sensitivity(
    model: nn.Module, clips: torch.Tensor, labels: torch.Tensor, shifts: list[int]
) -> dict[int, tuple[float, float, float]]:
    """Per shift: (share of predictions unchanged, mean relative logit change, mean gradient cosine)."""
    model.eval()
    x = clips.detach().clone().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(F.cross_entropy(logits, labels, reduction="sum"), x)
    logits = logits.detach()
    result = {}
    for shift in shifts:
        shifted = roll_frames(clips, shift).detach().requires_grad_(True)
        shifted_logits = model(shifted)
        (shifted_grad,) = torch.autograd.grad(
            F.cross_entropy(shifted_logits, labels, reduction="sum"), shifted
        )
        back = roll_frames(shifted_grad, -shift)
        same = (shifted_logits.argmax(1) == logits.argmax(1)).double().mean()
        change = ((shifted_logits.detach() - logits).norm(dim=1) / logits.norm(dim=1)).mean()
        cosine = F.cosine_similarity(back.flatten(1), grad.flatten(1), dim=1).mean()
        result[shift] = (float(same), float(change), float(cosine))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--clips", type=int, default=60, help="the first N selected clips (default 60)")
    parser.add_argument("--shift-length", type=int, default=7, help="L: shifts +-1..L (default 7)")
    parser.add_argument("--models", nargs="+", help="default: the run's white-box models")
    args = parser.parse_args(argv)
    if args.clips < 1 or args.shift_length < 1:
        print(
            f"error: --clips ({args.clips}) and --shift-length ({args.shift_length}) must be >= 1",
            file=sys.stderr,
        )
        return 2
    layout = RunLayout.of(args.run_dir)
    record = read_run_config(layout)
    if record is None:
        where = str(args.run_dir)
        print(f"error: {where!r} has no run_config.json (not a vidadv run folder)", file=sys.stderr)
        return 2
    config = record["config"]
    torch.manual_seed(0)
    dataset = build_dataset(config["dataset"])
    chosen = selected_clips(load_selection(layout))[: args.clips]
    clips = torch.stack([dataset[clip.index][0] for clip in chosen]).double()
    labels = torch.tensor([clip.label for clip in chosen])
    shifts = [s for i in range(1, args.shift_length + 1) for s in (-i, i)]
    print(f"{len(chosen)} clips, shifts +-1..{args.shift_length}, averaged over the shifts")
    print(
        "| model | predictions unchanged | relative logit change | cosine(shifted-back gradient, gradient) |"
    )
    print("|---|---|---|---|")
    for name in args.models or config["whitebox"]:
        model = load_model(name).double()
        per_shift = shift_sensitivity(model, clips, labels, shifts)
        same, change, cosine = (sum(v[k] for v in per_shift.values()) / len(shifts) for k in range(3))
        print(f"| {name} | {same:.3f} | {change:.3f} | {cosine:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
