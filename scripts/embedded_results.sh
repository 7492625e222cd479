#!/usr/bin/env bash
# Regenerates every number and figure of docs/results.md on the embedded benchmark (CPU is fine:
# about 1 h 45 min on 2 cores for sections 1-5, 1 h 35 min more for section 7, about 5 h more for
# section 8 (cost); each step resumes where it stopped when rerun).
#   bash scripts/embedded_results.sh            # run folders under runs/, copies tables/plots to docs/results/
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS=docs/results

copy_eval() {  # copy_eval RUN_DIR NAME: the run's tables and plots into docs/results/NAME (per-clip
    mkdir -p "$DOCS/$2"  # outcomes and adversarial clips stay in the run folder)
    find "$1/eval" -maxdepth 2 \( -name '*.csv' -o -name '*.md' -o -name '*.png' \) -not -path '*/cache/*' -not -path '*/gallery/*' \
        -not -name outcomes.csv -exec cp {} "$DOCS/$2/" \;
}

# 1. Frame importance and rank correlation between models (Figure 2)
vidadv analyze configs/analysis_embedded.yaml
mkdir -p "$DOCS/analysis"
find runs/analysis_embedded -maxdepth 1 \( -name 'spearman_*.csv' -o -name '*.png' -o -name 'summary.json' \) \
    -not -name '*_per_clip.csv' -exec cp {} "$DOCS/analysis/" \;

# 2. Weights and shifting strategies (Table 2), white-box nl-l
vidadv attack configs/ablation_weights_strategies.yaml
vidadv evaluate runs/ablation_weights_strategies
vidadv ablation runs/ablation_weights_strategies
copy_eval runs/ablation_weights_strategies ablation_weights_strategies

# 3. Shift length L = 1..9 (Figure 4), white-box nl-l
vidadv attack configs/ablation_shift_length.yaml
vidadv evaluate runs/ablation_shift_length
vidadv ablation runs/ablation_shift_length
for pair in "TT(1) L=7|TT(1) L=1" "TT(1) L=3|TT(1) L=1" "TT(10) L=7|TT(10) L=1" "TT(10) L=3|TT(10) L=1"; do
    vidadv compare runs/ablation_shift_length "${pair%%|*}" "${pair##*|}"
done
copy_eval runs/ablation_shift_length ablation_shift_length

# 4. The paper's attack list at 16/255 (white-box nl-l, slowfast-l, tpn-l), 8/255 and 4/255 (nl-l)
PAIRS=("TT(1)|FGSM" "TT(10)|BIM(10)" "TT(10)|VR(10)" "TT(10)|BIM(150)" "MI+TT(10)|MI(10)"
       "TI+TT(1)|TI(1)" "ATA+TT(10)|ATA(10)")
for suffix in "" _eps8 _eps4; do
    run=runs/embedded_paper_attacks$suffix
    vidadv attack "configs/embedded_paper_attacks$suffix.yaml"
    vidadv evaluate "$run"
    for pair in "${PAIRS[@]}"; do
        vidadv compare "$run" "${pair%%|*}" "${pair##*|}"
    done
    copy_eval "$run" "embedded_paper_attacks$suffix"
done

# 5. Summary tables of docs/results.md (docs/results/summary.md)
python scripts/results_summary.py

# 6. CNN <-> transformer transfer (section 7; needs the `transformers` extra; about 1 h 35 min more)
run=runs/embedded_transformer_transfer
vidadv attack configs/embedded_transformer_transfer.yaml
vidadv evaluate "$run"
for pair in "TT(1)|FGSM" "TT(10)|BIM(10)" "MI+TT(10)|MI(10)" "TT(10)|VR(10)"; do
    vidadv compare "$run" "${pair%%|*}" "${pair##*|}"
done
copy_eval "$run" transformer_transfer
find "$run/eval" -maxdepth 1 -name 'compare_*.json' -exec cp {} "$DOCS/transformer_transfer/" \;
cp "$run/selection.csv" "$DOCS/transformer_transfer/"
{ python scripts/perturbation_distance.py "$run" "TT(10)" "BIM(10)"
  python scripts/perturbation_distance.py "$run" "MI+TT(10)" "MI(10)"
  python scripts/perturbation_distance.py "$run" "TT(10)" "VR(10)"; } > "$DOCS/transformer_transfer/perturbation_distance.md"
python scripts/shift_sensitivity.py "$run" --clips 60 \
    --models nl-l nl-s slowfast-l slowfast-s tpn-l tpn-s timesformer-s videomae-s \
    > "$DOCS/transformer_transfer/shift_sensitivity.md"

# 7. Cost: TT's cheaper estimators. First choose each estimator's k on other clips (tuning run, test split
#    seed 1; about 1 h 30 min), then the ASR-versus-gradient-evaluations frontier (about 3 h 45 min)
run=runs/embedded_cost_frontier_tuning
vidadv attack configs/embedded_cost_frontier_tuning.yaml
vidadv evaluate "$run"
copy_eval "$run" cost_tuning
cp "$run/selection.csv" "$DOCS/cost_tuning/"
run=runs/embedded_cost_frontier
vidadv attack configs/embedded_cost_frontier.yaml
vidadv evaluate "$run"
python scripts/cost_summary.py "$run" --out "$DOCS/cost_frontier/summary.md"  # runs the paired compares
copy_eval "$run" cost_frontier
find "$run/eval" -maxdepth 1 -name 'compare_*.json' -exec cp {} "$DOCS/cost_frontier/" \;
