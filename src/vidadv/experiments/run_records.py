"""The records of a `vidadv attack` run folder: the run record with its resume guard (run_config.json,
config_hash.txt), the per-clip record in each adversarial clip's header, and the run summary
(attack_records.csv, attack_summary.json) with its table. The run loop itself is `runner`.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections import defaultdict
from typing import Any

from vidadv.experiments.config import ConfigError, ExperimentConfig
from vidadv.experiments.runfiles import dtype_resolution
from vidadv.experiments.runtime import (
    ADV_FORMAT,
    RUN_FORMAT,
    RunLayout,
    SelectedClip,
    format_table,
    read_run_config,
    versions,
)
from vidadv.utils.io import load_tensor_metadata, read_json, update_json, update_text

RECORD_FIELDS = (
    "whitebox",
    "attack",
    "clip_id",
    "index",
    "label",
    "clean_pred",
    "adv_pred",
    "clean_loss",
    "adv_loss",
    "linf",
    "time_s",
    "seed",
)


def read_record(path: Any) -> dict[str, Any]:
    """The per-clip record stored in an adversarial clip file's header."""
    metadata = load_tensor_metadata(path)
    if metadata.get("format") != ADV_FORMAT or "record" not in metadata:
        raise ValueError(f"{str(path)!r} is not a vidadv adversarial clip file ({ADV_FORMAT})")
    return json.loads(metadata["record"])


# ------------------------------------------------------------------------------------------------
# Resume guard
# ------------------------------------------------------------------------------------------------


def check_resume(config: ExperimentConfig, layout: RunLayout, force: bool) -> dict[str, Any] | None:
    """Refuse a run folder made with a different config (unless `force`); returns its run record."""
    previous = read_run_config(layout)
    if previous is None:
        if layout.adv_dir.exists() and any(layout.adv_dir.rglob("*.safetensors")) and not force:
            raise ConfigError(
                f"{layout.root} holds adversarial clips but no run_config.json, so its config is unknown; "
                "use --force to resume into it anyway"
            )
        return None
    if previous.get("config_hash") != config.config_hash() and not force:
        changed = _changed_keys(previous.get("hashed_fields", {}), config.hashed_fields())
        raise ConfigError(
            f"{layout.root} was made with a different config (hash {str(previous.get('config_hash'))[:12]}, "
            f"now {config.config_hash()[:12]}; changed: {', '.join(changed) or 'unknown'}). Use another "
            "output_dir, or --force to resume into it anyway (finished clips of the old config are kept)"
        )
    return previous


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))


def write_run_record(config: ExperimentConfig, layout: RunLayout, previous: dict[str, Any] | None) -> None:
    """Write run_config.json and config_hash.txt, keeping the creation time and the hashes of earlier
    configs; an unchanged record is left as it is."""
    history: list[str] = list(previous.get("previous_config_hashes", [])) if previous else []
    if previous and previous.get("config_hash") != config.config_hash():
        history.append(previous["config_hash"])
    record = {
        "format": RUN_FORMAT,
        "config_hash": config.config_hash(),
        "previous_config_hashes": history,
        "created": previous.get("created") if previous else _now(),
        "updated": _now(),
        "source": config.source,
        "versions": versions(),
        "config": config.to_dict(),
        "hashed_fields": config.hashed_fields(),
    }
    if previous is not None and _without_time(previous) == _without_time(json.loads(json.dumps(record))):
        record = previous  # nothing changed: leave the file alone (a finished run may be read-only)
    update_json(layout.run_config, record)
    update_text(layout.config_hash_file, config.config_hash() + "\n")


def _without_time(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "updated"}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------
# Summary
# ------------------------------------------------------------------------------------------------


def summarize_attack_run(
    config: ExperimentConfig, layout: RunLayout, clips: list[SelectedClip]
) -> dict[str, Any]:
    """Collect every record of the run into attack_records.csv and attack_summary.json."""
    tolerance = 1e-6 + dtype_resolution(config.torch_save_dtype)
    records: list[dict[str, Any]] = []
    settings: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for whitebox in config.whitebox:
        for attack in config.attacks:
            for clip_info in clips:
                path = layout.adv_path(whitebox, attack.name, clip_info.clip_id)
                if not path.exists():
                    missing.append(str(path.relative_to(layout.root)))
                    continue
                record = read_record(path)
                records.append(record)
                groups[(whitebox, attack.name)].append(record)
                if "settings" in record:
                    settings.setdefault(attack.name, record["settings"])
    rows = []
    for whitebox in config.whitebox:
        for attack in config.attacks:
            group = groups.get((whitebox, attack.name), [])
            budget = float(config.attack_options(attack)["eps"])
            fooled = sum(1 for r in group if r["adv_pred"] != r["label"])
            rows.append(
                {
                    "whitebox": whitebox,
                    "attack": attack.name,
                    "done": len(group),
                    "expected": len(clips),
                    "whitebox_asr": fooled / len(group) if group else None,
                    "max_linf": max((r["linf"] for r in group), default=None),
                    "eps": budget,
                    "budget_violations": sum(1 for r in group if r["linf"] > budget + tolerance),
                    "mean_time_s": sum(r["time_s"] for r in group) / len(group) if group else None,
                    "attack_seconds": sum(r["time_s"] for r in group),
                    "gradient_evaluations_per_step": _common_value(group, "gradient_evaluations_per_step"),
                }
            )
    summary = {
        "config_hash": config.config_hash(),
        "num_clips": len(clips),
        "expected_files": len(clips) * len(config.whitebox) * len(config.attacks),
        "done_files": len(records),
        "missing_files": missing,
        "complete": not missing,
        "rows": rows,
        "attack_settings": settings,
    }
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(RECORD_FIELDS), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(records)
    update_text(layout.records_csv, buffer.getvalue())
    update_json(layout.attack_summary, summary)
    return summary


def _common_value(records: list[dict[str, Any]], key: str) -> Any:
    """The value of `key` shared by every record (None when a record lacks it or they differ)."""
    values = {json.dumps(r.get(key)) for r in records}
    return records[0].get(key) if len(values) == 1 else None


def recorded_attack_settings(layout: RunLayout) -> dict[str, dict[str, Any]]:
    """{attack name: structured settings} recorded by `vidadv attack` (empty for runs made before the
    settings were recorded)."""
    if not layout.attack_summary.is_file():
        return {}
    summary = read_json(layout.attack_summary)
    settings = summary.get("attack_settings", {}) if isinstance(summary, dict) else {}
    return dict(settings) if isinstance(settings, dict) else {}


def format_attack_summary(summary: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    table = format_table(
        ["white-box", "attack", "done", "white-box ASR %", "max Linf*255", "over budget", "s/clip"],
        [
            (
                r["whitebox"],
                r["attack"],
                f"{r['done']}/{r['expected']}",
                pct(r["whitebox_asr"]),
                "-" if r["max_linf"] is None else f"{255 * r['max_linf']:.2f}",
                r["budget_violations"],
                "-" if r["mean_time_s"] is None else f"{r['mean_time_s']:.2f}",
            )
            for r in summary["rows"]
        ],
    )
    status = (
        "complete" if summary["complete"] else f"INCOMPLETE: {len(summary['missing_files'])} files missing"
    )
    return f"{table}\n{summary['done_files']}/{summary['expected_files']} adversarial clips ({status})"
