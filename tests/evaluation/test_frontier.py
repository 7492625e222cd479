"""The cost frontier: numbers against hand computation, method grouping from settings, costs, the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from PIL import Image

from vidadv.evaluation.frontier import (
    FRONTIER_CSV_HEADER,
    AttackCost,
    attack_costs,
    frontier_csv_rows,
    frontier_points,
    frontier_series,
    frontier_table,
    gradient_evaluations_per_clip,
    method_name,
    method_names,
    spans_several_budgets,
)
from vidadv.evaluation.outcomes import build_outcomes, table1
from vidadv.evaluation.plots import (
    MODEL_COLORS,
    OKABE_ITO,
    TOL_MUTED,
    Bar,
    method_style,
    plot_frontier,
)
from vidadv.utils.stats import bootstrap_mean_ci

MODELS = ("A", "B", "C")
N_BOOT, SEED = 300, 3

#: fooled[(white-box, attack, clip)] = the black-box models fooled (label 0; fooled models predict 1)
FOOLED: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("A", "dear", "c1"): ("B", "C"),
    ("A", "dear", "c2"): ("B", "C"),
    ("A", "dear", "c3"): ("B", "C"),
    ("B", "dear", "c1"): ("A", "C"),
    ("B", "dear", "c2"): ("A", "C"),
    ("B", "dear", "c3"): (),
    ("A", "other", "c1"): (),
    ("A", "other", "c2"): ("C",),
    ("A", "other", "c3"): ("B", "C"),  # "other" was only run on white-box A
    ("A", "cheap", "c1"): ("B",),
    ("A", "cheap", "c2"): ("B", "C"),
    ("A", "cheap", "c3"): (),
    ("B", "cheap", "c1"): ("A", "C"),
    ("B", "cheap", "c2"): (),
    ("B", "cheap", "c3"): ("A",),
}
#: per clip: mean over white-box models of the share of black-box models fooled (by hand from FOOLED)
HAND = {
    "dear": [1.0, 1.0, (1.0 + 0.0) / 2],
    "other": [0.0, 0.5, 1.0],
    "cheap": [(0.5 + 1.0) / 2, (1.0 + 0.0) / 2, (0.0 + 0.5) / 2],
}
SETTINGS: dict[str, dict[str, Any]] = {
    "dear": {"spec": "bim", "steps": 6, "gradient_evaluations_per_step": 1, "options": {"steps": 6}},
    "other": {
        "spec": "mi+tt",
        "steps": 1,
        "gradient_evaluations_per_step": 3,
        "options": {"steps": 1, "shift_length": 1, "shift_sampling": "all"},
    },
    "cheap": {"spec": "bim", "steps": 2, "gradient_evaluations_per_step": 1, "options": {"steps": 2}},
}
SECONDS = {"dear": 0.6, "other": None, "cheap": 0.2}


def _outcomes() -> Any:
    predictions = {
        key: {m: (1 if m in fooled or m == key[0] else 0) for m in MODELS} for key, fooled in FOOLED.items()
    }
    return build_outcomes(
        predictions, {"c1": 0, "c2": 0, "c3": 0}, MODELS, ("A", "B"), ("dear", "other", "cheap")
    )


def test_frontier_numbers_equal_hand_computation_and_table1() -> None:
    outcomes = _outcomes()
    costs = attack_costs(["dear", "other", "cheap"], SETTINGS, SECONDS)
    assert costs["dear"] == AttackCost("dear", "BIM", 6, 0.6)
    assert costs["other"] == AttackCost("other", "MI+TT", 3, None)
    assert spans_several_budgets(costs)
    points = frontier_points(outcomes, costs, n_boot=N_BOOT, seed=SEED)
    # methods in order of their first attack (dear: BIM), each method's points by cost
    assert [(p.method, p.attack, p.gradient_evaluations) for p in points] == [
        ("BIM", "cheap", 2),
        ("BIM", "dear", 6),
        ("MI+TT", "other", 3),
    ]
    overall = {row["attack"]: row["overall"] for row in table1(outcomes, n_boot=N_BOOT, seed=SEED)}
    for point in points:
        values = HAND[point.attack]
        assert point.asr == pytest.approx(sum(values) / len(values))
        assert point.n_clips == 3
        expected = bootstrap_mean_ci(values, n_boot=N_BOOT, seed=SEED)
        assert (point.lo, point.hi) == pytest.approx((expected.lo, expected.hi))
        assert (point.asr, point.lo, point.hi) == pytest.approx(
            (overall[point.attack]["asr"], overall[point.attack]["lo"], overall[point.attack]["hi"])
        )
    assert points[0].asr == pytest.approx(0.5) and points[1].asr == pytest.approx(5 / 6)
    rows = frontier_csv_rows(points)
    assert len(FRONTIER_CSV_HEADER) == len(rows[0])
    assert rows[0][:6] == ["BIM", "cheap", 2, 0.2, pytest.approx(100.0), 3]
    assert rows[1][4] == pytest.approx(100.0)  # 0.6 s / 6 evaluations
    assert rows[2][3:5] == ["", ""]  # no recorded time
    assert rows[1][6] == pytest.approx(100 * 5 / 6)
    header, text = frontier_table(points)
    assert text[1][-1] == f"83.33 [{100 * points[1].lo:.1f}, {100 * points[1].hi:.1f}]"
    assert len(header) == len(text[0])
    assert frontier_series(points) == {
        "BIM": [(2.0, points[0].bar), (6.0, points[1].bar)],
        "MI+TT": [(3.0, points[2].bar)],
    }
    assert frontier_series(points, x="seconds") == {"BIM": [(0.2, points[0].bar), (0.6, points[1].bar)]}


def test_a_missing_cost_or_count_is_an_error_naming_the_attack() -> None:
    legacy = {**SETTINGS, "cheap": {"spec": "bim", "steps": 2, "options": {"steps": 2}}}
    with pytest.raises(ValueError, match=r"attack 'cheap': the run records no gradient evaluation count"):
        attack_costs(["dear", "other", "cheap"], legacy)
    with pytest.raises(ValueError, match=r"attack 'new' has no recorded settings"):
        attack_costs(["dear", "new"], SETTINGS)
    with pytest.raises(ValueError, match=r"no recorded cost for attack 'cheap'"):
        frontier_points(_outcomes(), attack_costs(["dear", "other"], SETTINGS), n_boot=10, seed=0)
    with pytest.raises(ValueError, match=r"attack 'dear': wall time"):
        attack_costs(["dear"], SETTINGS, {"dear": -1.0})
    single = attack_costs(["dear"], SETTINGS)
    assert not spans_several_budgets(single)


def test_gradient_evaluations_per_clip_from_settings() -> None:
    assert gradient_evaluations_per_clip("x", {"steps": 10, "gradient_evaluations_per_step": 15}) == 150
    ata = {"steps": 10, "gradient_evaluations_per_step": 15, "setup_gradient_evaluations": 15}
    assert gradient_evaluations_per_clip("x", ata) == 165
    # the attack's own per-clip count wins where recorded
    assert gradient_evaluations_per_clip("x", {**ata, "gradient_evaluations_per_clip": 7}) == 7
    with pytest.raises(ValueError, match="attack 'x'"):
        gradient_evaluations_per_clip("x", {"steps": True, "gradient_evaluations_per_step": 1})


def _tt(spec: str = "tt", steps: int = 10, **options: Any) -> dict[str, Any]:
    defaults = {"shift_length": 7, "weights": "gaussian", "strategy": "adjacent", "shift_sampling": "all"}
    return {"spec": spec, "steps": steps, "options": {**defaults, "steps": steps, **options}}


def test_methods_come_from_settings_not_display_names() -> None:
    settings = {
        "BIM(10)": {"spec": "bim", "steps": 10, "options": {"steps": 10, "step_size": 1.6 / 255}},
        "BIM(150)": {"spec": "bim", "steps": 150, "options": {"steps": 150, "step_size": 0.1 / 255}},
        "VR1(10)": {"spec": "vr", "steps": 10, "options": {"vr_samples": 1, "vr_sigma": 0.06}},
        "VR15(10)": {"spec": "vr", "steps": 10, "options": {"vr_samples": 15, "vr_sigma": 0.06}},
        "TT(1)": _tt(steps=1, chunk_size=3, seed=4),
        "TT(10)": _tt(),
        "MI+TT(10)": _tt("mi+tt", decay=1.0),
        "cheap one": _tt(shift_sampling="iid", shift_samples=1),  # a name that says nothing
        "MI+TT-anti3(17)": _tt("mi+tt", 17, shift_sampling="antithetic", shift_samples=3),
        "TT-sag3(3)": _tt(steps=3, shift_sampling="sag", shift_samples=3),
        "TT(5) mislabelled": {"spec": "bim", "steps": 5, "options": {"steps": 5}},
    }
    assert method_names(settings) == {
        "BIM(10)": "BIM",
        "BIM(150)": "BIM",
        "VR1(10)": "VR",
        "VR15(10)": "VR",
        "TT(1)": "TT",
        "TT(10)": "TT",
        "MI+TT(10)": "MI+TT",
        "cheap one": "TT-iid1",
        "MI+TT-anti3(17)": "MI+TT-anti3",
        "TT-sag3(3)": "TT-sag3",
        "TT(5) mislabelled": "BIM",
    }
    assert method_name("x", {"spec": "tt+mi", "options": {}}) == "TT+MI"  # the recorded spec as it is
    with pytest.raises(ValueError, match="attack 'x': its recorded settings have no spec"):
        method_name("x", {"steps": 3})


def test_methods_that_would_share_a_name_are_told_apart_by_their_options() -> None:
    eps = 16 / 255
    settings = {
        "TT L3 (10)": _tt(shift_length=3, eps=eps),
        "TT L3 (2)": _tt(steps=2, shift_length=3, eps=eps),
        "TT L7": _tt(eps=eps),
        "TT 8/255": _tt(eps=8 / 255),
        "BIM": {"spec": "bim", "steps": 3, "options": {"eps": eps}},
        "BIM 8/255": {"spec": "bim", "steps": 3, "options": {"eps": 8 / 255}},
    }
    names = method_names(settings)
    assert names["TT L3 (10)"] == names["TT L3 (2)"] == "TT (shift_length=3, eps=16/255)"
    assert names["TT L7"] == "TT (shift_length=7, eps=16/255)"
    assert names["TT 8/255"] == "TT (shift_length=7, eps=8/255)"
    assert (names["BIM"], names["BIM 8/255"]) == ("BIM (eps=16/255)", "BIM (eps=8/255)")
    assert method_names({k: settings[k] for k in ("TT L7", "BIM")}) == {"TT L7": "TT", "BIM": "BIM"}


def test_method_style_is_fixed_by_name_and_not_a_model_colour() -> None:
    assert not set(TOL_MUTED.values()) & set(OKABE_ITO.values())
    methods = ["BIM", "VR", "TT", "MI+TT", "TT-iid1", "TT-anti3", "MI+TT-anti3", "TT-sag3", "DI+TT", "x"]
    styles = {m: method_style(m) for m in methods}
    assert styles == {m: method_style(m) for m in reversed(methods)}  # independent of order
    assert all(
        s.color in TOL_MUTED.values() and s.color not in MODEL_COLORS.values() for s in styles.values()
    )
    assert len({styles[m].color for m in ("BIM", "VR", "TT", "TT-iid1", "TT-anti3", "TT-sag3")}) == 6
    # momentum: the base method's colour, dashed, hollow markers
    assert styles["MI+TT"].color == styles["TT"].color and styles["MI+TT"].linestyle == "--"
    assert styles["MI+TT"].hollow and not styles["TT"].hollow and styles["TT"].linestyle == "-"
    assert styles["MI+TT-anti3"].color == styles["TT-anti3"].color == method_style("TT-anti5").color
    assert method_style("TT-anti5").marker != styles["TT-anti3"].marker  # k picks the marker


def test_frontier_plot_draws_each_method_in_its_style(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: dict[str, dict[str, Any]] = {}
    bands: list[str] = []
    axis: dict[str, str] = {}
    original_errorbar, original_fill = Axes.errorbar, Axes.fill_between
    for name in ("set_xlabel", "set_ylabel", "set_xscale"):
        original = getattr(Axes, name)

        def record(
            axes: Axes, value: str, *args: Any, _name: str = name, _f: Any = original, **kw: Any
        ) -> Any:
            axis[_name] = value
            return _f(axes, value, *args, **kw)

        monkeypatch.setattr(Axes, name, record)

    def errorbar(axes: Axes, x: Any, y: Any, *args: Any, **kwargs: Any) -> Any:
        drawn[kwargs["label"]] = {
            "x": list(x),
            "y": list(y),
            "color": to_hex(kwargs["color"]),
            "linestyle": kwargs["linestyle"],
            "yerr": kwargs.get("yerr"),
        }
        return original_errorbar(axes, x, y, *args, **kwargs)

    def fill_between(axes: Axes, *args: Any, **kwargs: Any) -> Any:
        bands.append(to_hex(kwargs["color"]))
        return original_fill(axes, *args, **kwargs)

    monkeypatch.setattr(Axes, "errorbar", errorbar)
    monkeypatch.setattr(Axes, "fill_between", fill_between)
    series = {
        "TT": [(150.0, Bar(0.6, 0.5, 0.7)), (15.0, Bar(0.3, 0.2, 0.4))],
        "MI+TT": [(150.0, Bar(0.7, 0.6, 0.8)), (30.0, Bar(0.4, 0.3, 0.5))],
        "BIM": [(10.0, Bar(0.1, 0.05, 0.2))],
    }
    path = plot_frontier(series, tmp_path / "frontier.png", xlabel="gradient evaluations per clip")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 600 and image.size[1] > 400
    assert axis == {
        "set_xscale": "log",
        "set_xlabel": "gradient evaluations per clip",
        "set_ylabel": "average black-box ASR (%)",
    }
    assert set(drawn) == set(series)  # one labelled line (legend entry) per method
    assert drawn["TT"]["x"] == [15.0, 150.0] and drawn["TT"]["y"] == pytest.approx([30.0, 60.0])
    for method in series:
        assert drawn[method]["color"] == method_style(method).color.lower()
        assert drawn[method]["linestyle"] == method_style(method).linestyle
    assert sorted(bands) == sorted([method_style("TT").color.lower(), method_style("MI+TT").color.lower()])
    lo_hi = drawn["BIM"]["yerr"]  # a single point: error bars (5 below, 10 above in percent)
    assert lo_hi[0][0] == pytest.approx(5.0) and lo_hi[1][0] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="costs must be positive"):
        plot_frontier({"TT": [(0.0, Bar(0.1, 0.0, 0.2))]}, tmp_path / "bad.png", xlabel="x")
    with pytest.raises(ValueError, match="at least one point"):
        plot_frontier({}, tmp_path / "none.png", xlabel="x")
