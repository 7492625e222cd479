"""configs/embedded_transformer_transfer.yaml: valid, the eight models, and the pass count it states."""

from __future__ import annotations

from pathlib import Path

from tests.attacks.tiny_models import TinyConv
from vidadv.attacks import build_attack
from vidadv.experiments.config import load_config

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded_transformer_transfer.yaml"


def test_transfer_config_covers_both_families_with_the_paper_settings() -> None:
    config = load_config(CONFIG, check_files=False)
    labels = [m.label for m in config.models]
    assert labels == [
        "nl-s",
        "nl-l",
        "slowfast-s",
        "slowfast-l",
        "tpn-s",
        "tpn-l",
        "timesformer-s",
        "videomae-s",
    ]
    # The transformers are attacked first; results do not depend on the order (batch seeds come from the
    # run seed and the clip ids), so only the set is the paper's protocol.
    assert sorted(config.whitebox) == ["nl-l", "slowfast-l", "timesformer-s", "tpn-l", "videomae-s"]
    assert abs(config.eps - 16 / 255) < 1e-12
    model = TinyConv()
    costs = {
        a.name: build_attack(a.spec, model, **config.attack_options(a)).gradient_evaluations_per_clip
        for a in config.attacks
    }
    assert costs == {
        "FGSM": 1, "BIM(10)": 10, "MI(10)": 10, "TT(1)": 15, "TT(10)": 150, "MI+TT(10)": 150, "VR(10)": 150
    }  # fmt: skip
    # The header's cost line: 486 passes per clip and white-box model, 583,200 in all.
    assert sum(costs.values()) == 486 and 486 * 5 * 240 == 583_200
    assert "583,200 passes" in CONFIG.read_text()
