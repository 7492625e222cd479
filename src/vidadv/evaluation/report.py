"""Result tables, Figure-3-style bar plots and a self-contained HTML report.

Attack success rate (ASR): the share of attacked clips a model misclassifies (untargeted). An
`AsrMatrix` has one row per (white-box model, attack) and one column per evaluated model; the
white-box column is the white-box ASR, the others are *transfer* (black-box) ASRs, and the row's
black-box average excludes the white-box model (the number the TT paper reports). Values are fractions
in [0, 1]; tables and plots show percent.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import mimetypes
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import torch
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from vidadv.evaluation.plots import AVERAGE_LABEL, Bar, model_color, plot_transfer_bars
from vidadv.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text, jsonable
from vidadv.utils.stats import wilson_interval

# ------------------------------------------------------------------------------------------------
# ASR matrix
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AsrRow:
    """ASR of every model on the clips of one (white-box model, attack) pair."""

    whitebox: str
    attack: str
    n_clips: int
    asr: Mapping[str, float]

    @property
    def blackbox_models(self) -> list[str]:
        return [model for model in self.asr if model != self.whitebox]

    @property
    def blackbox_average(self) -> float | None:
        """Mean ASR over the models other than the white-box one (None if there are none)."""
        values = [self.asr[m] for m in self.blackbox_models]
        return sum(values) / len(values) if values else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record: white-box, attack, n_clips, per-model ASR and the black-box average."""
        return {
            "whitebox": self.whitebox,
            "attack": self.attack,
            "n_clips": self.n_clips,
            "asr": dict(self.asr),
            "blackbox_average": self.blackbox_average,
        }


@dataclass(frozen=True)
class AsrMatrix:
    """Rows: (white-box, attack); columns: `models`. See the module docstring."""

    models: tuple[str, ...]
    rows: tuple[AsrRow, ...]

    def __post_init__(self) -> None:
        for row in self.rows:
            unknown = [m for m in row.asr if m not in self.models]
            if unknown:
                raise ValueError(f"row ({row.whitebox}, {row.attack}) has ASR for unknown models {unknown}")
            bad = [m for m, v in row.asr.items() if not 0.0 <= v <= 1.0]
            if bad:
                raise ValueError(
                    f"ASR values are fractions in [0, 1]; row ({row.whitebox}, {row.attack}): {bad}"
                )

    @property
    def whiteboxes(self) -> list[str]:
        return list(dict.fromkeys(row.whitebox for row in self.rows))

    @property
    def attacks(self) -> list[str]:
        return list(dict.fromkeys(row.attack for row in self.rows))

    def row(self, whitebox: str, attack: str) -> AsrRow:
        for row in self.rows:
            if row.whitebox == whitebox and row.attack == attack:
                return row
        raise KeyError(f"no row for white-box {whitebox!r} and attack {attack!r}")

    @classmethod
    def from_outcomes(
        cls, outcomes: Iterable[Mapping[str, Any]], models: Sequence[str] | None = None
    ) -> AsrMatrix:
        """Build from per-clip outcomes: mappings with whitebox, attack, clip_id, model and fooled (0/1)."""
        counts: dict[tuple[str, str], dict[str, list[int]]] = {}
        clips: dict[tuple[str, str], set[str]] = {}
        seen_models: list[str] = []
        for outcome in outcomes:
            try:
                key = (str(outcome["whitebox"]), str(outcome["attack"]))
                model, fooled, clip_id = (
                    str(outcome["model"]),
                    int(bool(outcome["fooled"])),
                    outcome["clip_id"],
                )
            except KeyError as err:
                raise ValueError(
                    f"an outcome needs whitebox, attack, clip_id, model and fooled; missing {err}"
                ) from err
            per_model = counts.setdefault(key, {})
            tally = per_model.setdefault(model, [0, 0])
            tally[0] += fooled
            tally[1] += 1
            clips.setdefault(key, set()).add(str(clip_id))
            if model not in seen_models:
                seen_models.append(model)
        columns = tuple(models) if models is not None else tuple(seen_models)
        rows = tuple(
            AsrRow(key[0], key[1], len(clips[key]), {m: t[0] / t[1] for m, t in per_model.items()})
            for key, per_model in counts.items()
        )
        return cls(columns, rows)


def _pct(value: float | None, digits: int = 2) -> str:
    return (
        ""
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{100 * value:.{digits}f}"
    )


def asr_interval_text(cell: Mapping[str, Any]) -> str:
    """An ASR cell as Table 1 prints it: percent with its 95 % interval, "-" when the cell is empty."""
    if "asr" not in cell:
        return "-"
    return f"{100 * cell['asr']:.2f} [{100 * cell['lo']:.1f}, {100 * cell['hi']:.1f}]"


def paired_difference_text(row: Mapping[str, Any]) -> str:
    """A paired difference (a - b) in percentage points with its 95 % interval, signs shown."""
    return f"{100 * row['diff']:+.2f} [{100 * row['lo']:+.2f}, {100 * row['hi']:+.2f}]"


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV document (header + rows), quoted where a cell needs it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def format_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns, for terminal summaries."""
    text_rows = [[str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in header]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in text_rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def asr_table_rows(
    matrix: AsrMatrix, paper_numbers: Mapping[str, float] | None = None, mark_whitebox: bool = True
) -> tuple[list[str], list[list[str]]]:
    """Header and rows (percent strings) of an ASR matrix; the white-box cell gets a '*'."""
    header = ["white-box", "attack", "n clips", *matrix.models, "black-box avg"]
    if paper_numbers:
        header.append("paper black-box avg")
    rows = []
    for row in matrix.rows:
        cells = [row.whitebox, row.attack, str(row.n_clips)]
        for model in matrix.models:
            text = _pct(row.asr.get(model))
            cells.append(text + ("*" if mark_whitebox and model == row.whitebox and text else ""))
        cells.append(_pct(row.blackbox_average))
        if paper_numbers:
            paper = paper_numbers.get(row.attack)
            cells.append("" if paper is None else f"{paper:.2f}")
        rows.append(cells)
    return header, rows


def asr_html_table(
    matrix: AsrMatrix, caption: str = "", paper_numbers: Mapping[str, float] | None = None
) -> HtmlTable:
    """The ASR matrix as an HTML table: the white-box model's cell shaded (and marked '*'), a rule between
    white-box groups."""
    header, rows = asr_table_rows(matrix, paper_numbers)
    column = {model: 3 + i for i, model in enumerate(matrix.models)}
    cell_classes, row_classes, previous = [], [], None
    for row in matrix.rows:
        classes = [""] * len(header)
        if row.whitebox in column:
            classes[column[row.whitebox]] = "wb"
        cell_classes.append(classes)
        row_classes.append("group-start" if previous is not None and row.whitebox != previous else "")
        previous = row.whitebox
    return HtmlTable(header, rows, caption, row_classes, cell_classes)


def attack_settings_text(settings: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """One line per attack with all its hyperparameters (the run's structured attack settings;
    eps and step sizes shown in 1/255 units)."""
    text = {}
    for name, record in settings.items():
        options = dict(record.get("options", {}))
        for key in ("eps", "step_size"):
            if isinstance(options.get(key), float):
                options[key] = f"{options[key] * 255:.2f}/255"
        text[name] = f"{record.get('spec', '')}: " + ", ".join(f"{k}={v}" for k, v in options.items())
    return text


def write_asr_tables(
    matrix: AsrMatrix,
    out_dir: str | os.PathLike[str],
    stem: str = "asr_matrix",
    paper_numbers: Mapping[str, float] | None = None,
    title: str | None = None,
) -> tuple[Path, Path]:
    """Write the ASR matrix as `<stem>.csv` and `<stem>.md` (percent); returns both paths.

    paper_numbers: optional attack name -> published black-box average (%), shown in an extra column.
    """
    folder = Path(out_dir)
    header, rows = asr_table_rows(matrix, paper_numbers, mark_whitebox=False)
    csv_path = atomic_write_text(folder / f"{stem}.csv", csv_text(header, rows))
    header, rows = asr_table_rows(matrix, paper_numbers, mark_whitebox=True)
    note = (
        "ASR (%) = share of the n attacked clips that each model misclassifies (untargeted). "
        "* = the white-box (source) model; the black-box average excludes it."
    )
    text = (f"## {title}\n\n" if title else "") + note + "\n\n" + markdown_table(header, rows) + "\n"
    md_path = atomic_write_text(folder / f"{stem}.md", text)
    return csv_path, md_path


# ------------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------------


def plot_asr_bars(
    asr: Mapping[str, Mapping[str, float]],
    path: str | os.PathLike[str],
    title: str = "",
    ylabel: str = "attack success rate (%)",
    errors: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
) -> Path:
    """Grouped bar chart (PNG, matplotlib Agg): one group per attack, one bar per model.

    asr[attack][model] is a fraction in [0, 1]; errors[attack][model] = (lo, hi) draws interval whiskers.
    """
    if not asr:
        raise ValueError("plot_asr_bars needs at least one attack")
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the global backend alone

    attacks = list(asr)
    models = list(dict.fromkeys(m for per_model in asr.values() for m in per_model))
    width = 0.8 / max(1, len(models))
    figure = Figure(figsize=(max(6.0, 0.9 * len(attacks) + 2.0), 4.0), dpi=110)
    axes = figure.add_subplot(1, 1, 1)
    for position, model in enumerate(models):
        xs = [i - 0.4 + width * (position + 0.5) for i in range(len(attacks))]
        heights = [100 * asr[a].get(model, float("nan")) for a in attacks]
        yerr = None
        if errors is not None:
            lows, highs = [], []
            for attack, height in zip(attacks, heights, strict=True):
                lo, hi = errors.get(attack, {}).get(model, (height / 100, height / 100))
                lows.append(max(0.0, height - 100 * lo))
                highs.append(max(0.0, 100 * hi - height))
            yerr = [lows, highs]
        axes.bar(
            xs,
            heights,
            width=width,
            label=model,
            yerr=yerr,
            capsize=2 if yerr else 0,
            color=model_color(model),
            edgecolor="black",
            linewidth=0.4,
        )
        for bar_x, height in zip(xs, heights, strict=True):
            if height == 0.0:
                axes.text(bar_x, 1.0, "0", ha="center", va="bottom", fontsize=7)
    axes.set_xticks(range(len(attacks)))
    axes.set_xticklabels(attacks, rotation=35, ha="right", fontsize=8)
    axes.set_ylabel(ylabel)
    axes.set_ylim(0, 100)
    axes.grid(axis="y", alpha=0.3)
    if title:
        axes.set_title(title)
    axes.legend(fontsize=7, ncol=min(3, len(models)), loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def transfer_bars(
    matrix: AsrMatrix,
    whitebox: str,
    averages: Mapping[tuple[str, str], tuple[float, float, float]] | None = None,
) -> dict[str, dict[str, Bar]]:
    """The bars of one white-box model's transfer plot: per attack, each black-box model's ASR with its 95 %
    Wilson interval (n = the row's clips) and, where `averages[(whitebox, attack)]` = (estimate, lo, hi) is
    given, the black-box average with that (bootstrap) interval."""
    bars: dict[str, dict[str, Bar]] = {}
    for row in matrix.rows:
        if row.whitebox != whitebox:
            continue
        per_model = {}
        for model in matrix.models:
            if model == whitebox or model not in row.asr:
                continue
            successes = round(row.asr[model] * row.n_clips)
            interval = wilson_interval(successes, row.n_clips)
            per_model[model] = Bar(row.asr[model], interval.lo, interval.hi)
        average = (averages or {}).get((whitebox, row.attack))
        if average is not None:
            per_model[AVERAGE_LABEL] = Bar(*average)
        bars[row.attack] = per_model
    return bars


def transfer_plot_alt(whitebox: str, bars: Mapping[str, Mapping[str, Bar]]) -> str:
    """Alt text of a transfer plot: what it shows and the black-box averages it draws."""
    averages = [
        f"{attack} {100 * per_model[AVERAGE_LABEL].value:.0f} %"
        for attack, per_model in bars.items()
        if AVERAGE_LABEL in per_model
    ]
    models = list(dict.fromkeys(m for per_model in bars.values() for m in per_model if m != AVERAGE_LABEL))
    return (
        f"Bar chart, white-box {whitebox}: transfer attack success rate (%) of {', '.join(models)} "
        "per attack, grouped baseline, +TT, control, with 95 % intervals"
        + (f"; black-box averages: {', '.join(averages)}." if averages else ".")
    )


def plot_figure3(
    matrix: AsrMatrix,
    out_dir: str | os.PathLike[str],
    prefix: str = "figure3",
    averages: Mapping[tuple[str, str], tuple[float, float, float]] | None = None,
    pairs: Sequence[tuple[str, str]] = (),
) -> list[Path]:
    """Figure 3 of the TT paper, one PNG per white-box model: transfer ASR of each attack on each black-box
    model (Wilson intervals) and the black-box average (see `transfer_bars`)."""
    paths = []
    for whitebox in matrix.whiteboxes:
        name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in whitebox)
        paths.append(
            plot_transfer_bars(
                transfer_bars(matrix, whitebox, averages),
                Path(out_dir) / f"{prefix}_{name}.png",
                title=f"white-box: {whitebox} (transfer ASR)",
                pairs=pairs,
            )
        )
    return paths


# ------------------------------------------------------------------------------------------------
# Animated clips
# ------------------------------------------------------------------------------------------------


def clip_to_png(clip: torch.Tensor, path: str | os.PathLike[str], fps: float = 8.0) -> Path:
    """Write a clip (C, T, H, W) in [0, 1] (C = 1 or 3) as a looping animated PNG (APNG) at native size:
    lossless on the 1/255 grid (a GIF's palette would change pixels)."""
    from PIL import Image

    if not isinstance(clip, torch.Tensor) or clip.dim() != 4 or clip.shape[0] not in (1, 3):
        shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise ValueError(f"clip_to_png expects a tensor (C, T, H, W) with C = 1 or 3, got {shape}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    frames_uint8 = (clip.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    if frames_uint8.shape[0] == 1:
        frames_uint8 = frames_uint8.expand(3, -1, -1, -1)
    array = frames_uint8.permute(1, 2, 3, 0).contiguous().numpy()  # T, H, W, 3
    images = [Image.fromarray(frame, mode="RGB") for frame in array]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="PNG",
        save_all=True,
        append_images=images[1:],
        duration=max(20, round(1000 / fps)),
        loop=0,
        default_image=False,
    )
    return atomic_write_bytes(path, buffer.getvalue())


def perturbation_display(
    clean: torch.Tensor, adversarial: torch.Tensor, amplification: float | None = None
) -> tuple[torch.Tensor, float]:
    """The perturbation for display, 0.5 + amplification * delta clamped to [0, 1] (grey = unchanged), and
    the amplification used (default 1 / (2 max|delta|): the largest change reaches black or white)."""
    if clean.shape != adversarial.shape:
        raise ValueError(
            f"clean {tuple(clean.shape)} and adversarial {tuple(adversarial.shape)} clips differ in shape"
        )
    delta = adversarial.detach().float() - clean.detach().float()
    if amplification is None:
        peak = float(delta.abs().max())
        amplification = 1.0 if peak == 0.0 else 1.0 / (2 * peak)
    if not (math.isfinite(amplification) and amplification > 0):
        raise ValueError(f"amplification must be a positive number, got {amplification}")
    return (0.5 + amplification * delta).clamp(0, 1), float(amplification)


def amplified_perturbation(clean: torch.Tensor, adversarial: torch.Tensor) -> torch.Tensor:
    """The perturbation mapped to [0, 1] for display: 0.5 + delta / (2 max|delta|) (grey = unchanged)."""
    if clean.shape != adversarial.shape:
        raise ValueError(
            f"clean {tuple(clean.shape)} and adversarial {tuple(adversarial.shape)} clips differ in shape"
        )
    delta = adversarial.detach().float() - clean.detach().float()
    peak = float(delta.abs().max())
    if peak == 0.0:
        return torch.full_like(delta, 0.5)
    return 0.5 + delta / (2 * peak)


# ------------------------------------------------------------------------------------------------
# HTML report
# ------------------------------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    cleaned = text.strip().rstrip("*%").replace("\u2212", "-")
    if not cleaned:
        return True  # an empty cell does not decide a column's alignment
    if cleaned.startswith("[") and cleaned.endswith("]"):
        return all(_is_number(part) for part in cleaned[1:-1].split(","))
    try:
        float(cleaned)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HtmlTable:
    """A table of the HTML report. Columns of numbers are right-aligned (header too), text columns left.

    row_classes[r]: CSS classes of row r ("sig": a significant row, "group-start": first row of a group);
    cell_classes[r][c]: classes of one cell ("wb": the white-box model's cell, shaded).
    """

    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""
    row_classes: Sequence[str] = ()
    cell_classes: Sequence[Sequence[str]] = ()

    def align(self, column: int) -> str:
        numeric = all(_is_number(str(row[column])) for row in self.rows if column < len(row))
        return "num" if numeric and self.rows else "txt"

    def row_class(self, row: int) -> str:
        return self.row_classes[row] if row < len(self.row_classes) else ""

    def cell_class(self, row: int, column: int) -> str:
        if row < len(self.cell_classes) and column < len(self.cell_classes[row]):
            return self.cell_classes[row][column]
        return ""


@dataclass(frozen=True)
class Figure:
    """A plot in the report: the image file, alt text describing what it shows, an optional caption."""

    path: str | os.PathLike[str]
    alt: str
    caption: str = ""


@dataclass(frozen=True)
class Prediction:
    """A model's prediction on a gallery clip (class name or index) and whether it is fooled."""

    model: str
    prediction: str
    fooled: bool


@dataclass(frozen=True)
class GalleryItem:
    """One gallery row: a caption, named images (e.g. clean / adversarial / perturbation) and the models'
    predictions on the shown clip."""

    caption: str
    images: Mapping[str, str | os.PathLike[str]]
    predictions: Sequence[Prediction] = ()


@dataclass(frozen=True)
class Section:
    """A report section: text paragraphs, tables, figures (PNG paths or `Figure`s) and a clip gallery.

    figures_first: show the figures before the tables (a plot that is the section's point, its table the
    detail)."""

    title: str
    text: str = ""
    tables: Sequence[HtmlTable] = field(default_factory=tuple)
    images: Sequence[str | os.PathLike[str] | Figure] = field(default_factory=tuple)
    gallery: Sequence[GalleryItem] = field(default_factory=tuple)
    gallery_note: str = ""
    figures_first: bool = False


def gallery_item(
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    out_dir: str | os.PathLike[str],
    name: str,
    caption: str,
    fps: float = 8.0,
    scale: float = 1.0,
    *,
    amplification: float | None = None,
    predictions: Sequence[Prediction] = (),
    clean_name: str | None = None,
) -> GalleryItem:
    """Write clean, adversarial and amplified-perturbation clips of one clip as lossless animated PNGs
    (APNG) at native size (`scale` is left to the page's CSS); returns the gallery row.

    amplification: the perturbation is shown as 0.5 + amplification * delta (default: 1 / (2 max|delta|)).
    clean_name: file stem of the clean clip (default `name`); several attacks on one clip can share it.
    """
    del scale  # frames are stored at native size; the report upscales them with CSS
    folder = Path(out_dir)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    clean_safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in (clean_name or name))
    shown, factor = perturbation_display(clean, adversarial, amplification)
    paths = {
        "clean": clip_to_png(clean, folder / f"{clean_safe}_clean.png", fps),
        "adversarial": clip_to_png(adversarial, folder / f"{safe}_adv.png", fps),
        f"perturbation \u00d7{factor:.1f}": clip_to_png(shown, folder / f"{safe}_delta.png", fps),
    }
    return GalleryItem(caption, {label: str(p) for label, p in paths.items()}, tuple(predictions))


def _data_uri(path: str | os.PathLike[str]) -> str:
    source = Path(path)
    mime = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(source.read_bytes()).decode('ascii')}"


def _image_src(path: str | os.PathLike[str], folder: Path) -> str:
    """A relative link when the image lies inside the report's folder (the folder can then be moved),
    else the image embedded as a data URI."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"report image not found: {str(source)!r}")
    try:
        relative = source.resolve().relative_to(folder.resolve())
    except ValueError:
        return _data_uri(source)
    return quote(relative.as_posix())


def _as_section(section: Section | Mapping[str, Any]) -> Section:
    if isinstance(section, Section):
        return section
    if isinstance(section, Mapping):
        allowed = {"title", "text", "tables", "images", "gallery", "gallery_note", "figures_first"}
        unknown = set(section) - allowed
        if unknown:
            raise ValueError(f"unknown section keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        tables = [t if isinstance(t, HtmlTable) else HtmlTable(**t) for t in section.get("tables", ())]
        gallery = [g if isinstance(g, GalleryItem) else GalleryItem(**g) for g in section.get("gallery", ())]
        return Section(
            str(section.get("title", "")),
            str(section.get("text", "")),
            tables,
            list(section.get("images", ())),
            gallery,
            str(section.get("gallery_note", "")),
            bool(section.get("figures_first", False)),
        )
    raise TypeError(f"a report section is a Section or a mapping, got {type(section).__name__}")


#: Tokens kept on one line in running text: bracketed intervals and hyphenated names (nl-l, TT(10)).
_NOWRAP = re.compile(r"\[[^\]]*\]|[\w()+]+(?:-[\w()+]+)+|[+-]?\d+(?:\.\d+)?\s(?:points|%)")


def _nowrap_tokens(text: str) -> Markup:
    """Escape `text` and wrap intervals and hyphenated names in nowrap spans."""
    escaped = str(escape(text))
    return Markup(_NOWRAP.sub(lambda m: f'<span class="nw">{m.group(0)}</span>', escaped))


_ENVIRONMENT: Environment | None = None


def _environment() -> Environment:
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        _ENVIRONMENT = Environment(
            loader=PackageLoader("vidadv.evaluation", "templates"),
            autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _ENVIRONMENT.filters["nowrap_tokens"] = _nowrap_tokens
    return _ENVIRONMENT


def _figure(image: str | os.PathLike[str] | Figure, folder: Path) -> dict[str, str]:
    if isinstance(image, Figure):
        return {"src": _image_src(image.path, folder), "alt": image.alt, "caption": image.caption}
    return {"src": _image_src(image, folder), "alt": f"plot {Path(image).name}", "caption": ""}


def folder_links(
    folder: str | os.PathLike[str], exclude: Sequence[str] = (), max_per_folder: int = 200
) -> list[tuple[str, list[tuple[str, str]], int]]:
    """Every file under `folder` as (sub-folder, [(name, relative link)], number of files), top-level files
    first; a sub-folder with more than `max_per_folder` files lists only the first ones (its own link
    opens the rest)."""
    root = Path(folder)
    groups: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name in exclude or path.name.startswith("."):
            continue
        relative = path.relative_to(root)
        parent = relative.parent.as_posix()
        groups.setdefault("" if parent == "." else parent, []).append(
            (relative.name, quote(relative.as_posix()))
        )
    ordered = sorted(groups.items(), key=lambda item: (item[0] != "", item[0]))
    return [(name, files if not name else files[:max_per_folder], len(files)) for name, files in ordered]


def write_html_report(
    out_dir: str | os.PathLike[str],
    title: str,
    sections: Iterable[Section | Mapping[str, Any]],
    filename: str = "report.html",
    *,
    findings: Sequence[str] = (),
    provenance: Mapping[str, Any] | None = None,
    links: Sequence[tuple[str, Sequence[tuple[str, str]], int]] = (),
    gallery_px: int = 128,
) -> Path:
    """Write the HTML report (jinja2 template `templates/report.html.j2`).

    Images inside `out_dir` are linked relatively (the folder can be moved), others embedded. findings:
    the opening sentences; provenance: label -> value; links: `folder_links` output.
    """
    folder = Path(out_dir)
    rendered_sections = []
    for raw in sections:
        section = _as_section(raw)
        rendered_sections.append(
            {
                "title": section.title,
                "text": section.text,
                "tables": list(section.tables),
                "figures": [_figure(image, folder) for image in section.images],
                "figures_first": section.figures_first,
                "gallery_note": section.gallery_note,
                "gallery": [
                    {
                        "caption": item.caption,
                        "predictions": list(item.predictions),
                        "images": [(label, _image_src(path, folder)) for label, path in item.images.items()],
                    }
                    for item in section.gallery
                ],
            }
        )
    page = (
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title,
            findings=list(findings),
            sections=rendered_sections,
            provenance=[(str(k), str(v)) for k, v in (provenance or {}).items()],
            links=list(links),
            gallery_px=int(gallery_px),
        )
    )
    return atomic_write_text(folder / filename, page)


# ------------------------------------------------------------------------------------------------
# One writer for every command's report
# ------------------------------------------------------------------------------------------------


class ReportWriter:
    """The files of one command's report in one folder: tables (CSV + Markdown, echoed to the terminal),
    JSON, plots and the HTML report. Remembers the file names it wrote (`written`) and the HTML sections."""

    def __init__(self, out_dir: str | os.PathLike[str], echo: bool = True) -> None:
        self.folder = Path(out_dir)
        self.echo = echo
        self.written: list[str] = []
        self.sections: list[Section] = []

    def _record(self, path: Path) -> Path:
        if path.name not in self.written:
            self.written.append(path.name)
        return path

    def text(self, name: str, text: str) -> Path:
        """Write a text file (atomically)."""
        return self._record(atomic_write_text(self.folder / name, text))

    def json(self, name: str, obj: Any, indent: int | None = 2) -> Path:
        """Write strict JSON (tuples, tensors and paths converted)."""
        return self._record(atomic_write_json(self.folder / name, jsonable(obj), indent=indent))

    def csv(self, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
        return self.text(name, csv_text(header, rows))

    def markdown(
        self, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]], title: str = ""
    ) -> Path:
        """A Markdown table, under `## title` when given."""
        return self.text(name, (f"## {title}\n\n" if title else "") + markdown_table(header, rows) + "\n")

    def show(self, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Print `== title ==` and the table (when echoing)."""
        if self.echo:
            print(f"\n== {title} ==")
            print(format_table(header, rows))

    def table(
        self,
        stem: str,
        header: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        title: str = "",
        shown_as: str | None = None,
    ) -> tuple[Path, Path]:
        """`<stem>.csv` and `<stem>.md` (titled `title`); printed under `shown_as` when given."""
        paths = self.csv(f"{stem}.csv", header, rows), self.markdown(f"{stem}.md", header, rows, title)
        if shown_as is not None:
            self.show(shown_as, header, rows)
        return paths

    def asr_matrix(
        self,
        matrix: AsrMatrix,
        stem: str,
        paper_numbers: Mapping[str, float] | None = None,
        title: str | None = None,
    ) -> tuple[Path, Path]:
        """`write_asr_tables` (CSV without marks, Markdown with '*' on the white-box column)."""
        paths = write_asr_tables(matrix, self.folder, stem, paper_numbers, title=title)
        for path in paths:
            self._record(path)
        return paths

    def plots(self, paths: Iterable[Path]) -> list[Path]:
        """Record plots written by `plot_*` into this folder."""
        return [self._record(Path(p)) for p in paths]

    def section(self, section: Section, position: int | None = None) -> None:
        """Add a section to the HTML report (at the end, or at `position`)."""
        if position is None:
            self.sections.append(section)
        else:
            self.sections.insert(position, section)

    def html(
        self,
        title: str,
        filename: str = "report.html",
        *,
        findings: Sequence[str] = (),
        provenance: Mapping[str, Any] | None = None,
        link_files: bool = True,
    ) -> Path:
        """Write the HTML report of the collected sections, opening with `findings`, ending with the
        `provenance` block and (link_files) links to every file of the folder."""
        self._record(self.folder / filename)
        links = folder_links(self.folder) if link_files else []
        if link_files:  # the report links itself too (it may not exist yet)
            if not links or links[0][0] != "":
                links.insert(0, ("", [], 0))
            if all(name != filename for name, _ in links[0][1]):
                links[0] = ("", [*links[0][1], (filename, quote(filename))], links[0][2] + 1)
        path = write_html_report(
            self.folder, title, self.sections, filename, findings=findings, provenance=provenance, links=links
        )
        return self._record(path)
