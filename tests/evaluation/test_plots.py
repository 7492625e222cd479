"""Plots: one colour per model in every figure, grouped attacks, labelled zero bars, forest plot; Wilson."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from PIL import Image

from vidadv.evaluation import plots as plots_module
from vidadv.evaluation.ablation import plot_shift_length
from vidadv.evaluation.plots import (
    AVERAGE_COLOR,
    AVERAGE_LABEL,
    OKABE_ITO,
    Bar,
    ForestRow,
    attack_group,
    group_attacks,
    model_color,
    plot_forest,
    plot_transfer_bars,
)
from vidadv.evaluation.report import AsrMatrix, AsrRow, plot_asr_bars, plot_figure3, transfer_bars
from vidadv.models.zoo import ZOO_SPECS
from vidadv.models.zoo_transformers import TRANSFORMER_ZOO_SPECS
from vidadv.utils.stats import wilson_interval

ZOO = ("nl-s", "nl-l", "slowfast-s", "slowfast-l", "tpn-s", "tpn-l")


class _Recorder:
    """Records the colour matplotlib is asked to draw for each labelled bar series and line."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.colors: dict[str, set[str]] = {}
        self.texts: list[tuple[float, float, str]] = []
        original_bar, original_plot, original_text = Axes.bar, Axes.plot, Axes.text

        def bar(axes: Axes, *args: Any, **kwargs: Any) -> Any:
            container = original_bar(axes, *args, **kwargs)
            for patch in container.patches:
                self.colors.setdefault(kwargs.get("label", ""), set()).add(to_hex(patch.get_facecolor()))
            return container

        def plot(axes: Axes, *args: Any, **kwargs: Any) -> Any:
            lines = original_plot(axes, *args, **kwargs)
            for line in lines:
                self.colors.setdefault(kwargs.get("label", ""), set()).add(to_hex(line.get_color()))
            return lines

        def text(axes: Axes, x: float, y: float, s: str, *args: Any, **kwargs: Any) -> Any:
            self.texts.append((x, y, s))
            return original_text(axes, x, y, s, *args, **kwargs)

        monkeypatch.setattr(Axes, "bar", bar)
        monkeypatch.setattr(Axes, "plot", plot)
        monkeypatch.setattr(Axes, "text", text)


def _matrix() -> AsrMatrix:
    rows = []
    for whitebox in ("nl-l", "tpn-l"):
        for index, attack in enumerate(("FGSM", "TT(1)", "BIM(10)", "TT(10)", "VR(10)")):
            rows.append(AsrRow(whitebox, attack, 10, {m: ((index + i) % 5) / 10 for i, m in enumerate(ZOO)}))
    return AsrMatrix(ZOO, tuple(rows))


def test_palette_is_okabe_ito_fixed_and_distinct_for_the_zoo() -> None:
    colours = [model_color(m) for m in ZOO]
    assert len(set(colours)) == len(ZOO)
    assert set(colours) <= set(OKABE_ITO.values())
    assert model_color(AVERAGE_LABEL) == OKABE_ITO["black"] not in colours
    # unknown names: a stable colour from the palette, independent of call order
    assert model_color("i3d-kinetics") == model_color("i3d-kinetics") in OKABE_ITO.values()


def test_every_zoo_model_of_the_catalogue_has_its_own_colour() -> None:
    zoo = list(ZOO_SPECS) + list(TRANSFORMER_ZOO_SPECS)
    assert len(zoo) == 8
    colours = {model: model_color(model) for model in zoo}
    assert len(set(colours.values())) == len(zoo), colours
    assert AVERAGE_COLOR not in colours.values()


def test_same_model_same_colour_in_every_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _Recorder(monkeypatch)
    matrix = _matrix()
    plot_figure3(matrix, tmp_path, averages={("nl-l", "FGSM"): (0.3, 0.2, 0.4)})  # two white-boxes
    # a legend order that differs from the zoo order
    plot_asr_bars({"X": {"tpn-l": 0.5, "nl-s": 0.2, "slowfast-l": 0.1}}, tmp_path / "bars.png")
    plot_shift_length([1, 3], {"tpn-s": [0.1, 0.2], "nl-l": [0.3, 0.4]}, [0.2, 0.3], tmp_path / "fig4.png")
    seen = {label.split(" (")[0]: colours for label, colours in recorder.colors.items() if label}
    for model in ZOO:
        assert seen[model] == {model_color(model).lower()}, model
    assert seen[AVERAGE_LABEL] == {OKABE_ITO["black"].lower()}
    assert len(seen) >= len(ZOO)


def test_attacks_are_grouped_baseline_tt_control() -> None:
    assert [attack_group(a) for a in ("FGSM", "TT(10)", "TT+MI(10)", "TI+TT(1)", "VR(10)", "MI(10)")] == [
        "baseline",
        "+TT",
        "+TT",
        "+TT",
        "control",
        "baseline",
    ]
    attacks = ["FGSM", "BIM(10)", "TT(1)", "TT(10)", "MI(10)", "TT+MI(10)", "TI(1)", "TI+TT(1)", "VR(10)"]
    pairs = [("TT(1)", "FGSM"), ("TT(10)", "BIM(10)"), ("TT+MI(10)", "MI(10)"), ("TI+TT(1)", "TI(1)")]
    assert group_attacks(attacks, pairs) == [
        ("baseline", ["FGSM", "BIM(10)", "MI(10)", "TI(1)"]),
        ("+TT", ["TT(1)", "TT(10)", "TT+MI(10)", "TI+TT(1)"]),  # in the order of their baselines
        ("control", ["VR(10)"]),
    ]


def test_zero_bars_are_labelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _Recorder(monkeypatch)
    bars = {
        "FGSM": {"nl-s": Bar(0.0, 0.0, 0.2), "tpn-s": Bar(0.5, 0.3, 0.7), AVERAGE_LABEL: Bar(0.25, 0.1, 0.4)},
        "TT(1)": {"nl-s": Bar(0.0, 0.0, 0.2), "tpn-s": Bar(0.0, 0.0, 0.2), AVERAGE_LABEL: Bar(0.0, 0.0, 0.0)},
    }
    path = plot_transfer_bars(bars, tmp_path / "bars.png", title="t")
    assert sum(1 for _x, _y, s in recorder.texts if s == "0") == 4
    assert {s for _x, _y, s in recorder.texts} >= {"baseline", "+TT"}
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width <= 800  # one per white-box, readable when scaled down


def test_transfer_bars_use_wilson_intervals_and_the_given_average() -> None:
    bars = transfer_bars(_matrix(), "nl-l", {("nl-l", "FGSM"): (0.3, 0.2, 0.4)})
    assert set(bars["FGSM"]) == {m for m in ZOO if m != "nl-l"} | {AVERAGE_LABEL}
    assert AVERAGE_LABEL not in bars["TT(1)"]
    expected = wilson_interval(3, 10)  # slowfast-l on FGSM: 0.3 of 10 clips
    assert bars["FGSM"]["slowfast-l"] == Bar(0.3, expected.lo, expected.hi)
    assert bars["FGSM"][AVERAGE_LABEL] == Bar(0.3, 0.2, 0.4)


def test_forest_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [
        ForestRow("TT(10) - VR(10), nl-l", 0.05, 0.01, 0.09),
        ForestRow("TT(1) - FGSM, nl-l", 0.0, -0.1, 0.1),
    ]
    assert rows[0].excludes_zero and not rows[1].excludes_zero
    path = plot_forest(rows, tmp_path / "forest.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
    with pytest.raises(ValueError, match="at least one row"):
        plot_forest([], tmp_path / "none.png")
    with pytest.raises(ValueError, match="non-finite"):
        plot_forest([ForestRow("x", math.nan, 0.0, 0.1)], tmp_path / "nan.png")


@pytest.mark.parametrize("label_length", [5, 45, 90])
def test_forest_plot_text_stays_inside_the_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label_length: int
) -> None:
    figures = []
    real_png = plots_module._png
    monkeypatch.setattr(
        plots_module, "_png", lambda figure, path: figures.append(figure) or real_png(figure, path)
    )
    rows = [
        ForestRow("b" * label_length, 0.05, 0.01, 0.09),
        ForestRow("black-box average (white-box x)", 0, -1, 1),
    ]
    xlabel = "ASR(MI+TT(10)) - ASR(MI(10)) (percentage points)"
    plot_forest(
        rows, tmp_path / "forest.png", title="MI+TT(10) - MI(10): paired difference in ASR", xlabel=xlabel
    )
    (figure,) = figures
    renderer = FigureCanvasAgg(figure).get_renderer()
    axes = figure.axes[0]
    texts = [axes.title, axes.xaxis.label, *axes.get_yticklabels()]
    width, height = figure.bbox.width, figure.bbox.height
    for text in texts:
        box = text.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height, text.get_text()


def test_wilson_interval_matches_reference_values() -> None:
    # Newcombe (1998), Table I: 81/263 -> [0.2553, 0.3662]; 0/10 -> [0, 0.2775]; 10/10 -> [0.7225, 1]
    interval = wilson_interval(81, 263)
    assert (interval.lo, interval.hi) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert (wilson_interval(0, 10).lo, wilson_interval(0, 10).hi) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10).lo == pytest.approx(0.7225, abs=1e-4) and wilson_interval(10, 10).hi == 1.0
    for bad in ((3, 2), (-1, 5), (0, 0)):
        with pytest.raises(ValueError, match="successes"):
            wilson_interval(*bad)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_contains_the_estimate_inside_0_1(case: tuple[int, int]) -> None:
    successes, trials = case
    interval = wilson_interval(successes, trials)
    assert 0.0 <= interval.lo <= interval.estimate <= interval.hi <= 1.0
    assert interval.lo < interval.hi
