"""How far apart two attacks' perturbations are, per white-box model of a run (docs/results.md section 7).

For each white-box model and each clip both attacks produced, the mean absolute difference of the two
adversarial clips in units of the run's eps (0 = the same perturbation, 2 = opposite corners of the
eps-ball everywhere), and the share of voxels where they differ by less than eps/8; averaged over clips.
Used to check whether TT(10) on a white-box model that is (nearly) invariant to temporal shifts reduces
to BIM(10): for an exactly cyclic-shift-invariant model every shifted gradient, shifted back, equals the
unshifted one, so TT's weighted sum is the plain gradient.

    python scripts/perturbation_distance.py RUN_DIR "TT(10)" "BIM(10)"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safetensors.torch import load_file

from vidadv.experiments.runtime import RunLayout, load_selection, read_run_config, selected_clips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("attack_a")
    parser.add_argument("attack_b")
    args = parser.parse_args(argv)
    layout = RunLayout.of(args.run_dir)
    record = read_run_config(layout)
    if record is None:
        where = str(args.run_dir)
        print(f"error: {where!r} has no run_config.json (not a vidadv run folder)", file=sys.stderr)
        return 2
    config = record["config"]
    names = {attack["name"] for attack in config["attacks"]}
    for name in (args.attack_a, args.attack_b):
        if name not in names:
            print(f"error: attack {name!r} is not in the run (it has {sorted(names)})", file=sys.stderr)
            return 2
    eps = float(config["eps"])
    clips = selected_clips(load_selection(layout))
    difference = f"mean abs({args.attack_a} - {args.attack_b}) / eps"
    print(f"| white-box | clips | {difference} | share of voxels within eps/8 |")
    print("|---|---|---|---|")
    for whitebox in config["whitebox"]:
        distances, close = [], []
        for clip in clips:
            paths = [layout.adv_path(whitebox, name, clip.clip_id) for name in (args.attack_a, args.attack_b)]
            if not all(path.is_file() for path in paths):
                continue
            a, b = (load_file(str(path))["adv"].double() for path in paths)
            difference = (a - b).abs()
            distances.append(float(difference.mean()) / eps)
            close.append(float((difference < eps / 8).double().mean()))
        if distances:
            n = len(distances)
            print(f"| {whitebox} | {n} | {sum(distances) / n:.3f} | {sum(close) / n:.3f} |")
        else:
            print(f"| {whitebox} | 0 | - | - |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
