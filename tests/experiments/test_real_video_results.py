"""scripts/real_video_results.py on a tiny setting (zoo model, a generated mp4): rows, tables, resume."""

from __future__ import annotations

import json

import pytest
import torch

from tests.experiments.test_attack_video import moving_pattern_video
from tests.scripts import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("real_video_results")


def test_shifted_window_keeps_the_perturbation_on_its_frames(script):
    extended = torch.rand(3, 12, 4, 4) * 0.5
    delta = torch.rand(3, 8, 4, 4) * 0.1
    window = script.shifted_window(extended, delta, 3)
    assert torch.allclose(window[:, :5], extended[:, 3:8] + delta[:, 3:])  # video frames 3..7: perturbed
    assert torch.equal(window[:, 5:], extended[:, 8:11])  # video frames 8..10 were never perturbed


def test_tiny_run_and_resume(tmp_path, script, capsys):
    torch.set_num_threads(1)
    video = moving_pattern_video(tmp_path / "pattern.mp4", frames=40)
    out = tmp_path / "run"
    argv = ["--out", str(out), "--model", "nl-s", "--videos", str(video), "--attacks", "FGSM", "TT(1)",
            "--eps", "8/255", "--frames", "32", "--shifts", "1", "2"]  # fmt: skip
    assert script.main(argv) == 0
    first = capsys.readouterr().out
    assert "[1/2] pattern.mp4 8/255 FGSM" in first and "[2/2] pattern.mp4 8/255 TT(1)" in first
    state = json.loads((out / "results.json").read_text())
    assert [(r["attack"], r["eps"]) for r in state["rows"]] == [("FGSM", "8/255"), ("TT(1)", "8/255")]
    for row in state["rows"]:
        assert row["linf_255"] == pytest.approx(8.0, abs=1e-3)
        assert set(row["h264"]) == {"18", "23"} and set(row["shifts"]) == {"1", "2"}
        assert row["start_frame"] == (40 - 32 - 2) // 2
    assert state["rows"][1]["gradient_evaluations"] == 15  # TT: 2L + 1 shifted copies, one step
    table = (out / "results.md").read_text()
    assert table.count("| pattern.mp4 | 8/255 |") == 2 and "shift 2" in table
    assert len((out / "results.csv").read_text().strip().splitlines()) == 3
    summary = (out / "summary.md").read_text().splitlines()
    assert len(summary) == 4 and summary[2].startswith("| 8/255 | FGSM | 1 | ")
    assert summary[3].startswith("| 8/255 | TT(1) | 15 | ")
    flips = sum(r["flipped"] for r in state["rows"] if r["attack"] == "TT(1)")
    assert summary[3].split(" | ")[3] == f"{flips}/1"
    # a rerun finds everything done; adding a budget only runs the new rows
    assert script.main(argv) == 0
    assert "[" not in capsys.readouterr().out.split("wrote")[0]
    assert script.main([*argv[:-7], "--eps", "4/255", *argv[-5:]]) == 0
    added = capsys.readouterr().out
    assert "[1/2] pattern.mp4 4/255 FGSM" in added and "[2/2] pattern.mp4 4/255 TT(1)" in added
    assert len(json.loads((out / "results.json").read_text())["rows"]) == 4
    with pytest.raises(SystemExit, match="was made with"):
        script.main([*argv, "--seed", "1"])
    # the gradient-free control: +-eps per pixel, 0 gradient evaluations, listed first in the tables
    assert script.main([*argv[:6], "--attacks", "random sign", *argv[9:]]) == 0
    capsys.readouterr()
    control = json.loads((out / "results.json").read_text())["rows"][-1]
    assert control["attack"] == "random sign" and control["gradient_evaluations"] == 0
    assert control["linf_255"] == pytest.approx(8.0, abs=1e-3)
    lines = (out / "results.md").read_text().splitlines()
    assert lines[2].startswith("| pattern.mp4 | 4/255 |") and "| 8/255 | random sign |" in lines[4]


def test_a_second_process_is_refused_while_the_folder_is_in_use(tmp_path, script):
    from vidadv.utils.io import exclusive_lock

    video = moving_pattern_video(tmp_path / "pattern.mp4", frames=40)
    argv = ["--out", str(tmp_path / "run"), "--model", "nl-s", "--videos", str(video), "--attacks", "FGSM"]
    with exclusive_lock(tmp_path / "run", "another run"):
        with pytest.raises(SystemExit, match="in use by another vidadv process"):
            script.main(argv)
    assert not (tmp_path / "run" / "results.json").exists()
