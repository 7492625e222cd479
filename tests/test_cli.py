"""The command-line layer: every command is wired, and bad input gives a one-line error, not a trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidadv.cli import build_parser, main


def test_every_command_parses() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo", "--quick"]).quick is True
    assert parser.parse_args(["attack", "c.yaml", "--no-resume"]).no_resume is True
    args = parser.parse_args(["compare", "run", "TT(10)", "BIM(10)", "--variant", "h264"])
    assert (args.attack_a, args.attack_b, args.variant) == ("TT(10)", "BIM(10)", "h264")
    assert parser.parse_args(["evaluate", "run", "--quantize", "--h264"]).h264 is True
    assert parser.parse_args(["zoo", "train", "--models", "nl-s"]).models == ["nl-s"]
    assert parser.parse_args(["analyze", "a.yaml"]).config == "a.yaml"
    assert parser.parse_args(["ablation", "run", "--variant", "uint8"]).variant == "uint8"


def test_models_lists_gluoncv_names_and_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    names = capsys.readouterr().out.split()
    assert "i3d_nl5_resnet101_v1_kinetics400" in names and "tpn50" in names


@pytest.mark.parametrize("command", ["select", "attack", "analyze"])
def test_missing_config_is_a_clear_error(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "missing.yaml" in err and "Traceback" not in err


def test_evaluate_on_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "run_config.json" in capsys.readouterr().err


def test_os_errors_are_one_line_with_exit_code_1_and_debug_shows_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file, not a folder")
    assert main(["demo", "--quick", "--out", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert f"vidadv demo: error: File exists: {blocker}" in err and "Traceback" not in err
    assert "--debug" in err
    for argv in (["--debug", "demo", "--out", str(blocker)], ["demo", "--out", str(blocker), "--debug"]):
        with pytest.raises(FileExistsError):
            main(argv)


def test_a_device_typo_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["evaluate", "run"], ["compare", "run", "A", "B"], ["ablation", "run"]):
        with pytest.raises(SystemExit) as info:
            main([*command, "--device", "banana"])
        assert info.value.code == 2
        assert "argument --device: device must be one of" in capsys.readouterr().err
    assert build_parser().parse_args(["evaluate", "run", "--device", "cuda:1"]).device == "cuda:1"
