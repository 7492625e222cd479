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
import html
import io
import math
import mimetypes
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidadv.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text, jsonable

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
        axes.bar(xs, heights, width=width, label=model, yerr=yerr, capsize=2 if yerr else 0)
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


def plot_figure3(matrix: AsrMatrix, out_dir: str | os.PathLike[str], prefix: str = "figure3") -> list[Path]:
    """Figure 3 of the TT paper: per white-box model, ASR of each attack on each black-box model."""
    paths = []
    for whitebox in matrix.whiteboxes:
        asr = {
            row.attack: {m: row.asr[m] for m in matrix.models if m != whitebox and m in row.asr}
            for row in matrix.rows
            if row.whitebox == whitebox
        }
        name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in whitebox)
        paths.append(
            plot_asr_bars(
                asr, Path(out_dir) / f"{prefix}_{name}.png", title=f"white-box: {whitebox} (transfer ASR)"
            )
        )
    return paths


# ------------------------------------------------------------------------------------------------
# Animated clips
# ------------------------------------------------------------------------------------------------


def clip_to_gif(
    clip: torch.Tensor, path: str | os.PathLike[str], fps: float = 8.0, scale: float = 1.0
) -> Path:
    """Write a clip (C, T, H, W) with values in [0, 1] (C = 1 or 3) as a looping animated GIF."""
    from PIL import Image

    if not isinstance(clip, torch.Tensor) or clip.dim() != 4 or clip.shape[0] not in (1, 3):
        shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise ValueError(f"clip_to_gif expects a tensor (C, T, H, W) with C = 1 or 3, got {shape}")
    if not fps > 0 or not scale > 0:
        raise ValueError(f"fps and scale must be positive, got fps={fps}, scale={scale}")
    frames_uint8 = (clip.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    if frames_uint8.shape[0] == 1:
        frames_uint8 = frames_uint8.expand(3, -1, -1, -1)
    array = frames_uint8.permute(1, 2, 3, 0).contiguous().numpy()  # T, H, W, 3
    height, width = array.shape[1:3]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR
    images = [
        Image.fromarray(frame).resize(size, resample) if scale != 1 else Image.fromarray(frame)
        for frame in array
    ]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(20, round(1000 / fps)),
        loop=0,
        optimize=False,
    )
    return atomic_write_bytes(path, buffer.getvalue())


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


@dataclass(frozen=True)
class HtmlTable:
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass(frozen=True)
class GalleryItem:
    """One gallery row: a caption and named animated images (e.g. clean / adversarial / perturbation)."""

    caption: str
    images: Mapping[str, str | os.PathLike[str]]


@dataclass(frozen=True)
class Section:
    """A report section: text paragraphs, tables, images (PNG/GIF paths) and a clip gallery."""

    title: str
    text: str = ""
    tables: Sequence[HtmlTable] = field(default_factory=tuple)
    images: Sequence[str | os.PathLike[str]] = field(default_factory=tuple)
    gallery: Sequence[GalleryItem] = field(default_factory=tuple)


def gallery_item(
    clean: torch.Tensor,
    adversarial: torch.Tensor,
    out_dir: str | os.PathLike[str],
    name: str,
    caption: str,
    fps: float = 8.0,
    scale: float = 1.0,
) -> GalleryItem:
    """Write clean, adversarial and amplified-perturbation GIFs of one clip; returns the gallery row."""
    folder = Path(out_dir)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    paths = {
        "clean": clip_to_gif(clean, folder / f"{safe}_clean.gif", fps, scale),
        "adversarial": clip_to_gif(adversarial, folder / f"{safe}_adv.gif", fps, scale),
        "perturbation (amplified)": clip_to_gif(
            amplified_perturbation(clean, adversarial), folder / f"{safe}_delta.gif", fps, scale
        ),
    }
    return GalleryItem(caption, {label: str(p) for label, p in paths.items()})


def _data_uri(path: str | os.PathLike[str]) -> str:
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"report image not found: {str(source)!r}")
    mime = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(source.read_bytes()).decode('ascii')}"


def _as_section(section: Section | Mapping[str, Any]) -> Section:
    if isinstance(section, Section):
        return section
    if isinstance(section, Mapping):
        allowed = {"title", "text", "tables", "images", "gallery"}
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
        )
    raise TypeError(f"a report section is a Section or a mapping, got {type(section).__name__}")


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td:first-child, td:nth-child(2) { text-align: left; }
caption { caption-side: top; text-align: left; font-style: italic; padding: 4px 0; }
img.plot { max-width: 100%; margin: 0.5em 0; }
.gallery td { text-align: center; vertical-align: top; }
.gallery img { image-rendering: pixelated; }
p.text { white-space: pre-wrap; }
"""


def write_html_report(
    out_dir: str | os.PathLike[str],
    title: str,
    sections: Iterable[Section | Mapping[str, Any]],
    filename: str = "report.html",
) -> Path:
    """Write one self-contained HTML file (images embedded as base64) with the given sections."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for raw in sections:
        section = _as_section(raw)
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f'<p class="text">{html.escape(section.text)}</p>')
        for table in section.tables:
            parts.append("<table>")
            if table.caption:
                parts.append(f"<caption>{html.escape(table.caption)}</caption>")
            parts.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in table.header) + "</tr>")
            for row in table.rows:
                parts.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>")
            parts.append("</table>")
        for image in section.images:
            alt = html.escape(Path(image).name)
            parts.append(f'<div><img class="plot" alt="{alt}" src="{_data_uri(image)}"></div>')
        if section.gallery:
            labels = list(dict.fromkeys(label for item in section.gallery for label in item.images))
            parts.append('<table class="gallery"><tr><th>clip</th>')
            parts.append("".join(f"<th>{html.escape(label)}</th>" for label in labels) + "</tr>")
            for item in section.gallery:
                cells = [f"<td>{html.escape(item.caption)}</td>"]
                for label in labels:
                    image = item.images.get(label)
                    cells.append(
                        f'<td><img alt="{html.escape(label)}" src="{_data_uri(image)}"></td>'
                        if image
                        else "<td></td>"
                    )
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    return atomic_write_text(Path(out_dir) / filename, "\n".join(parts) + "\n")


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

    def html(self, title: str, filename: str = "report.html") -> Path:
        """Write the HTML report of the collected sections."""
        return self._record(write_html_report(self.folder, title, self.sections, filename))
