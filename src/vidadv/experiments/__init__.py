"""vidadv.experiments: the run layer behind the CLI.

The config schema (`config`), clip selection (`select`), the resumable attack runner (`runner`), and the
commands that read runs: `evaluate`/`compare` (`evaluate`), `ablation`, `analyze`, and the embedded
benchmark `demo`.
"""

from vidadv.experiments.analyze import run_analyze
from vidadv.experiments.config import (
    AttackSpec,
    ConfigError,
    ExperimentConfig,
    ModelSpec,
    config_from_dict,
    load_config,
)
from vidadv.experiments.evaluate import run_compare, run_evaluate
from vidadv.experiments.runner import run_attack
from vidadv.experiments.select import run_select

__all__ = [
    "AttackSpec",
    "ConfigError",
    "ExperimentConfig",
    "ModelSpec",
    "config_from_dict",
    "load_config",
    "run_analyze",
    "run_attack",
    "run_compare",
    "run_evaluate",
    "run_select",
]
