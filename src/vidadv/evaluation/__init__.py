"""vidadv.evaluation: experiment runs (select / attack), evaluation (ASR tables, Table 1, Figure 3),
paired comparisons, statistics, crash-safe I/O and reports.

Command functions (called by `vidadv.cli`): `run_select`, `run_attack`, `run_evaluate`, `run_compare`.
"""

from vidadv.evaluation.config import (
    AttackSpec,
    ConfigError,
    ExperimentConfig,
    ModelSpec,
    config_from_dict,
    load_config,
)
from vidadv.evaluation.evaluate import run_compare, run_evaluate
from vidadv.evaluation.io import (
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    load_tensors,
)
from vidadv.evaluation.paper import PAPER_NUMBERS
from vidadv.evaluation.report import (
    AsrMatrix,
    AsrRow,
    clip_to_gif,
    plot_asr_bars,
    write_asr_tables,
    write_html_report,
)
from vidadv.evaluation.runner import run_attack
from vidadv.evaluation.select import run_select
from vidadv.evaluation.stats import bootstrap_mean_ci, mcnemar, paired_bootstrap_diff

__all__ = [
    "PAPER_NUMBERS",
    "AsrMatrix",
    "AsrRow",
    "AttackSpec",
    "ConfigError",
    "ExperimentConfig",
    "ModelSpec",
    "atomic_save_tensors",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "bootstrap_mean_ci",
    "clip_to_gif",
    "config_from_dict",
    "load_config",
    "load_tensors",
    "mcnemar",
    "paired_bootstrap_diff",
    "plot_asr_bars",
    "run_attack",
    "run_compare",
    "run_evaluate",
    "run_select",
    "write_asr_tables",
    "write_html_report",
]
