"""Published numbers of the TT paper, printed beside reproduced results.

Average black-box attack success rates (%) from Wei et al., "Boosting the Transferability of Video
Adversarial Examples via Temporal Translation" (AAAI 2022): white-box models NL-101, SlowFast-101 and
TPN-101, each attacked clip evaluated on the other models. The number in parentheses is the number of
attack iterations. "TT" is the overall TT average quoted in the paper's abstract.

An attack in a config matches a row through its `paper_key` (or its display name, when that equals a key).
"""

from __future__ import annotations

PAPER_NUMBERS: dict[str, dict[str, float]] = {
    "ucf101": {
        "TI(1)": 45.96,
        "TI+TT(1)": 52.48,
        "ATA(10)": 9.98,
        "ATA+TT(10)": 12.87,
        "MI(10)": 33.58,
        "MI+TT(10)": 44.80,
        "TT": 48.60,
    },
    "kinetics400": {
        "TI(1)": 54.38,
        "TI+TT(1)": 63.22,
        "ATA(10)": 8.52,
        "ATA+TT(10)": 10.58,
        "MI(10)": 40.60,
        "MI+TT(10)": 63.50,
        "TT": 61.56,
    },
}

PAPER_KEYS: tuple[str, ...] = tuple(PAPER_NUMBERS["kinetics400"])


def paper_number(dataset: str | None, key: str | None) -> float | None:
    """The paper's average black-box ASR (%) for `key` on `dataset`, or None when it has none."""
    if dataset is None or key is None:
        return None
    return PAPER_NUMBERS.get(dataset, {}).get(key)
