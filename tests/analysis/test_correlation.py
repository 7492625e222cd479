"""Spearman rank correlation: against direct formulas, known values and invariance properties."""

from __future__ import annotations

import csv
import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vidadv.analysis.correlation import (
    average_ranks,
    matrix_csv,
    mean_off_diagonal,
    pair_intervals_csv,
    pairwise_spearman,
    per_clip_csv,
    spearman_correlation,
)


def direct_average_ranks(values: list[float]) -> list[float]:
    """Textbook ranking: sort, then give each run of equal values the mean of its 1-based positions."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        mean_position = (start + 1 + end + 1) / 2
        for k in range(start, end + 1):
            ranks[order[k]] = mean_position
        start = end + 1
    return ranks


def direct_spearman(a: list[float], b: list[float]) -> float:
    """Pearson correlation of textbook average ranks, in plain Python."""
    ra, rb = direct_average_ranks(a), direct_average_ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return cov / math.sqrt(va * vb)


small_ints = st.integers(min_value=-5, max_value=5)
lists_with_ties = st.integers(min_value=2, max_value=12).flatmap(
    lambda n: st.tuples(
        st.lists(small_ints, min_size=n, max_size=n), st.lists(small_ints, min_size=n, max_size=n)
    )
)


@given(st.lists(small_ints, min_size=1, max_size=15))
def test_average_ranks_match_textbook_ranking(values: list[int]) -> None:
    got = average_ranks(torch.tensor(values, dtype=torch.float64)).tolist()
    assert got == pytest.approx(direct_average_ranks([float(v) for v in values]))


@given(lists_with_ties)
def test_spearman_matches_direct_implementation_with_ties(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    got = float(
        spearman_correlation(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    )
    if len(set(a)) == 1 or len(set(b)) == 1:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(direct_spearman([float(x) for x in a], [float(y) for y in b]), abs=1e-12)


@given(st.permutations(list(range(10))), st.permutations(list(range(10))))
def test_spearman_without_ties_equals_rank_difference_formula(a: list[int], b: list[int]) -> None:
    n = len(a)
    d_squared = sum((x - y) ** 2 for x, y in zip(a, b, strict=True))
    expected = 1 - 6 * d_squared / (n * (n * n - 1))
    assert float(spearman_correlation(torch.tensor(a), torch.tensor(b))) == pytest.approx(expected, abs=1e-12)


def test_known_values() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert float(spearman_correlation(x, x**3 + 7)) == pytest.approx(1.0)
    assert float(spearman_correlation(x, -torch.exp(x))) == pytest.approx(-1.0)
    # Classic example with a tie (value given in scipy.stats.spearmanr's documentation): 0.8207826816681233.
    with_tie = torch.tensor([5.0, 6.0, 7.0, 8.0, 7.0])
    assert float(spearman_correlation(x, with_tie)) == pytest.approx(0.8207826816681233, abs=1e-12)
    assert math.isnan(float(spearman_correlation(x, torch.ones(5))))


@settings(max_examples=50)
@given(lists_with_ties, st.integers(min_value=1, max_value=4), st.integers(min_value=-3, max_value=3))
def test_spearman_symmetric_and_invariant_to_monotone_transforms(
    pair: tuple[list[int], list[int]], power: int, shift: int
) -> None:
    a = torch.tensor(pair[0], dtype=torch.float64)
    b = torch.tensor(pair[1], dtype=torch.float64)
    rho = spearman_correlation(a, b)
    assert torch.equal(torch.isnan(rho), torch.isnan(spearman_correlation(b, a)))
    if torch.isnan(rho):
        return
    assert float(spearman_correlation(b, a)) == pytest.approx(float(rho), abs=1e-12)
    # Strictly increasing maps of integers keep every tie and every order: rank correlation is unchanged.
    monotone_a = torch.sign(a) * a.abs() ** (2 * power - 1) + shift
    monotone_b = torch.exp(b / 3.0) * 2.0 - shift
    assert float(spearman_correlation(monotone_a, monotone_b)) == pytest.approx(float(rho), abs=1e-12)
    # Reversing the order of one list flips the sign.
    assert float(spearman_correlation(-a, b)) == pytest.approx(-float(rho), abs=1e-12)


def test_batched_spearman_equals_rowwise() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 4, (6, 9), generator=generator).double()
    b = torch.randn(6, 9, generator=generator, dtype=torch.float64)
    batched = spearman_correlation(a, b)
    for row in range(6):
        expected = direct_spearman(a[row].tolist(), b[row].tolist())
        assert float(batched[row]) == pytest.approx(expected, abs=1e-12)


def test_spearman_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="equal shapes"):
        spearman_correlation(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="at least 2"):
        spearman_correlation(torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="NaN"):
        average_ranks(torch.tensor([1.0, math.nan]))


def test_pairwise_spearman_matrix_and_nan_handling() -> None:
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(4, 8, generator=generator)
    b = torch.randn(4, 8, generator=generator)
    c = a.clone()
    c[2] = 0.5  # constant list on clip 2: undefined there, left out of the average
    result = pairwise_spearman({"a": a, "b": b, "c": c})
    assert result.names == ("a", "b", "c")
    assert result.per_clip.shape == (4, 3, 3)
    assert torch.allclose(result.mean, result.mean.T)
    assert result.mean[0, 0] == pytest.approx(1.0) and result.mean[1, 1] == pytest.approx(1.0)
    assert result.mean[0, 2] == pytest.approx(1.0)  # c equals a wherever defined
    assert int(result.valid_counts[0, 2]) == 3 and int(result.valid_counts[0, 1]) == 4
    expected_ab = sum(direct_spearman(a[i].tolist(), b[i].tolist()) for i in range(4)) / 4
    assert float(result.mean[0, 1]) == pytest.approx(expected_ab, abs=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        pairwise_spearman({"a": a, "b": b[:, :5]})


def test_csv_outputs_round_trip() -> None:
    generator = torch.Generator().manual_seed(2)
    importances = {"m1": torch.randn(3, 6, generator=generator), "m2": torch.randn(3, 6, generator=generator)}
    result = pairwise_spearman(importances)
    rows = list(csv.reader(io.StringIO(matrix_csv(result.names, result.mean))))
    assert rows[0] == ["model", "m1", "m2"]
    assert float(rows[1][2]) == pytest.approx(float(result.mean[0, 1]), abs=1e-6)
    per_clip_rows = list(csv.DictReader(io.StringIO(per_clip_csv(["x", "y", "z"], result))))
    assert [r["clip_id"] for r in per_clip_rows] == ["x", "y", "z"]
    assert float(per_clip_rows[1]["spearman"]) == pytest.approx(float(result.per_clip[1, 0, 1]), abs=1e-6)
    assert mean_off_diagonal(result.mean) == pytest.approx(float(result.mean[0, 1]))


def test_pair_intervals_use_valid_clips_and_bracket_the_mean() -> None:
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(30, 8, generator=generator)
    b = a + 0.8 * torch.randn(30, 8, generator=generator)  # positively related to a
    c = torch.randn(30, 8, generator=generator)
    c[:5] = 1.0  # undefined on 5 clips
    importances = {"a": a, "b": b, "c": c}
    result = pairwise_spearman(importances)
    rows = {(r["model_a"], r["model_b"]): r for r in csv.DictReader(io.StringIO(pair_intervals_csv(result)))}
    assert set(rows) == {("a", "b"), ("a", "c"), ("b", "c")}
    assert int(rows[("a", "b")]["clips"]) == 30 and int(rows[("a", "c")]["clips"]) == 25
    for (x, y), row in rows.items():
        i, j = result.names.index(x), result.names.index(y)
        direct = [
            direct_spearman(m1.tolist(), m2.tolist())
            for m1, m2 in zip(importances[x], importances[y], strict=True)
            if len(set(m2.tolist())) > 1
        ]
        assert float(row["mean_spearman"]) == pytest.approx(sum(direct) / len(direct), abs=1e-6)
        assert float(row["mean_spearman"]) == pytest.approx(float(result.mean[i, j]), abs=1e-6)
        assert float(row["ci_low"]) < float(row["mean_spearman"]) < float(row["ci_high"])
    assert float(rows[("a", "b")]["ci_low"]) > 0.3  # clearly related pair: interval well above 0
    assert float(rows[("a", "c")]["ci_low"]) < 0 < float(rows[("a", "c")]["ci_high"])  # unrelated pair
