"""ASR tables, plots, GIFs and the HTML report, checked against hand-computed values and file contents."""

from __future__ import annotations

import csv
import itertools
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from vidadv.evaluation.report import (
    AsrMatrix,
    AsrRow,
    GalleryItem,
    HtmlTable,
    ReportWriter,
    Section,
    amplified_perturbation,
    clip_to_png,
    folder_links,
    gallery_item,
    perturbation_display,
    plot_asr_bars,
    plot_figure3,
    write_asr_tables,
    write_html_report,
)

MODELS = ["A", "B", "C", "D"]


def _random_outcomes(seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    outcomes = []
    for whitebox, attack, clip in itertools.product(["A", "B"], ["X", "Y"], range(7)):
        for model in MODELS:
            outcomes.append(
                {
                    "whitebox": whitebox,
                    "attack": attack,
                    "clip_id": f"c{clip}",
                    "model": model,
                    "fooled": rng.random() < 0.4,
                }
            )
    return outcomes


def test_matrix_from_outcomes_matches_hand_counts() -> None:
    outcomes = _random_outcomes(0)
    matrix = AsrMatrix.from_outcomes(outcomes, models=MODELS)
    assert len(matrix.rows) == 4 and matrix.whiteboxes == ["A", "B"] and matrix.attacks == ["X", "Y"]
    for row in matrix.rows:
        assert row.n_clips == 7
        for model in MODELS:
            hits = [
                o["fooled"]
                for o in outcomes
                if (o["whitebox"], o["attack"], o["model"]) == (row.whitebox, row.attack, model)
            ]
            assert row.asr[model] == pytest.approx(sum(hits) / len(hits))
        others = [m for m in MODELS if m != row.whitebox]
        assert row.blackbox_average == pytest.approx(sum(row.asr[m] for m in others) / len(others))


def test_asr_tables_hold_the_matrix_in_percent(tmp_path: Path) -> None:
    matrix = AsrMatrix.from_outcomes(_random_outcomes(1), models=MODELS)
    csv_path, md_path = write_asr_tables(matrix, tmp_path, paper_numbers={"Y": 12.5})
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 4
    for line in rows:
        row = matrix.row(line["white-box"], line["attack"])
        assert int(line["n clips"]) == row.n_clips
        for model in MODELS:
            assert float(line[model]) == pytest.approx(100 * row.asr[model], abs=0.005)
        assert float(line["black-box avg"]) == pytest.approx(100 * row.blackbox_average, abs=0.005)
        assert line["paper black-box avg"] == ("12.50" if line["attack"] == "Y" else "")
    markdown = md_path.read_text()
    assert "| A | X | 7 |" in markdown and "* = the white-box" in markdown
    first = matrix.row("A", "X")
    assert f"| {100 * first.asr['A']:.2f}* |" in markdown


def test_matrix_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="fractions"):
        AsrMatrix(("A",), (AsrRow("A", "X", 3, {"A": 55.0}),))
    with pytest.raises(ValueError, match="unknown models"):
        AsrMatrix(("A",), (AsrRow("A", "X", 3, {"B": 0.5}),))
    with pytest.raises(ValueError, match="missing"):
        AsrMatrix.from_outcomes([{"whitebox": "A", "attack": "X", "model": "A", "fooled": 1}])


def test_plots_are_png_files(tmp_path: Path) -> None:
    asr = {"FGSM": {"B": 0.2, "C": 0.35}, "TT(10)": {"B": 0.6, "C": 0.7}}
    errors = {"FGSM": {"B": (0.1, 0.3)}}
    path = plot_asr_bars(asr, tmp_path / "bars.png", title="t", errors=errors)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 300
    matrix = AsrMatrix.from_outcomes(_random_outcomes(2), models=MODELS)
    paths = plot_figure3(matrix, tmp_path)
    assert [p.name for p in paths] == ["figure3_A.png", "figure3_B.png"]
    with pytest.raises(ValueError, match="at least one attack"):
        plot_asr_bars({}, tmp_path / "none.png")


def test_amplified_perturbation_maps_the_largest_change_to_0_and_1() -> None:
    clean = torch.full((3, 2, 4, 4), 0.5)
    adversarial = clean.clone()
    adversarial[0, 0, 0, 0] += 0.01
    adversarial[1, 1, 1, 1] -= 0.02
    shown = amplified_perturbation(clean, adversarial)
    assert shown[1, 1, 1, 1] == pytest.approx(0.0) and shown[0, 0, 0, 0] == pytest.approx(0.75)
    assert shown[2].eq(0.5).all()
    assert amplified_perturbation(clean, clean).eq(0.5).all()


def test_html_report_links_its_files_and_escapes(tmp_path: Path) -> None:
    report_dir = tmp_path / "report"
    png = plot_asr_bars({"X": {"B": 0.5}}, report_dir / "plot.png")
    foreign = plot_asr_bars({"X": {"B": 0.5}}, tmp_path / "elsewhere" / "foreign.png")
    clean = torch.rand(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    item = gallery_item(clean, (clean + 0.03).clamp(0, 1), report_dir / "clips", "clip/1", "clip 1", scale=2)
    sections = [
        Section(
            "Tables <1>", text="note <script>alert(1)</script>", tables=[HtmlTable(["a", "b"], [[1, "x&y"]])]
        ),
        {"title": "Plots", "images": [str(png)]},
        Section("Gallery", gallery=[item, GalleryItem("second", {"clean": item.images["clean"]})]),
    ]
    path = write_html_report(report_dir, "Report & results", sections)
    text = path.read_text()
    # images inside the report's folder are relative links (the folder can move), nothing is embedded
    assert 'src="plot.png"' in text and "base64" not in text
    assert text.count('src="clips/clip_1_clean.png"') == 2 and 'src="clips/clip_1_adv.png"' in text
    assert '<meta name="viewport"' in text
    assert "<script>" not in text and "&lt;script&gt;" in text and "x&amp;y" in text
    assert 'src="http' not in text and 'src="/' not in text
    # an image outside the folder is embedded instead of linked by an absolute path
    text = write_html_report(report_dir, "t", [Section("x", images=[foreign])]).read_text()
    assert text.count('src="data:image/png;base64,') == 1 and "base64" not in text.split("<img")[0]
    with pytest.raises(ValueError, match="unknown section keys"):
        write_html_report(tmp_path, "t", [{"title": "x", "plots": []}])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        write_html_report(tmp_path, "t", [Section("x", images=[str(tmp_path / "missing.png")])])


def test_png_clip_is_lossless_and_animated(tmp_path: Path) -> None:
    levels = torch.arange(256, dtype=torch.float32) / 255
    generator = torch.Generator().manual_seed(0)
    clip = levels[torch.randint(0, 256, (3, 6, 5, 7), generator=generator)]  # every value on the 1/255 grid
    path = clip_to_png(clip, tmp_path / "clip.png", fps=10)
    with Image.open(path) as image:
        assert image.format == "PNG" and getattr(image, "is_animated", False) and image.n_frames == 6
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
    assert frames[0].shape == (5, 7, 3)  # native size: enlarging is the page's job
    for index, frame in enumerate(frames):
        expected = (clip[:, index].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        assert np.array_equal(frame, expected), index
    with pytest.raises(ValueError, match="C = 1 or 3"):
        clip_to_png(torch.zeros(2, 3, 4, 4), tmp_path / "bad.png")


def test_gallery_item_states_the_amplification_and_shares_the_clean_clip(tmp_path: Path) -> None:
    clean = torch.full((3, 2, 4, 4), 0.5)
    adversarial = clean.clone()
    adversarial[0, 0, 0, 0] += 0.05
    item = gallery_item(clean, adversarial, tmp_path, "a", "c", amplification=4.0, clean_name="clip")
    assert list(item.images) == ["clean", "adversarial", "perturbation \u00d74.0"]
    assert Path(item.images["clean"]).name == "clip_clean.png"
    shown, factor = perturbation_display(clean, adversarial, 4.0)
    assert factor == 4.0 and shown[0, 0, 0, 0] == pytest.approx(0.7) and shown[1].eq(0.5).all()
    assert perturbation_display(clean, adversarial)[1] == pytest.approx(10.0)  # 1 / (2 * 0.05)
    with pytest.raises(ValueError, match="amplification"):
        perturbation_display(clean, adversarial, -1.0)


def test_html_table_aligns_headers_with_their_columns_and_marks_cells(tmp_path: Path) -> None:
    table = HtmlTable(
        ["model", "ASR", "95 % CI"],
        [["nl-l", "12.50*", "[-1.0, +3.5]"], ["tpn-l", "", "[+0.5, +2.0]"]],
        row_classes=["", "sig group-start"],
        cell_classes=[["", "wb", ""]],
    )
    assert [table.align(c) for c in range(3)] == ["txt", "num", "num"]
    text = write_html_report(tmp_path, "t", [Section("s", tables=[table])]).read_text()
    assert '<th class="txt">model</th><th class="num">ASR</th>' in text
    assert '<td class="num wb">12.50*</td>' in text and '<tr class="sig group-start">' in text
    assert '<div class="scroll"><table>' in text


def test_report_writer_opens_with_findings_and_links_every_file(tmp_path: Path) -> None:
    writer = ReportWriter(tmp_path / "run", echo=False)
    writer.csv("asr.csv", ["a"], [[1]])
    writer.text("sub/notes.txt", "x")
    path = writer.html(
        "title",
        findings=["TT(10) minus VR(10) is +4.2 points (95 % CI [+1.0, +7.5]) from white-box nl-l."],
        provenance={"seed": 3, "config hash": "abc"},
    )
    text = path.read_text()
    assert text.index('class="findings"') < text.index("<h2>Provenance</h2>")
    assert '<span class="nw">[+1.0, +7.5]</span>' in text and '<span class="nw">nl-l</span>' in text
    assert "<dt>seed</dt><dd>3</dd>" in text
    for href in ('href="asr.csv"', 'href="report.html"', 'href="sub/notes.txt"'):
        assert href in text, href


def test_folder_links_list_every_file_and_cap_large_folders(tmp_path: Path) -> None:
    (tmp_path / "adv").mkdir()
    for index in range(5):
        (tmp_path / "adv" / f"clip {index}.safetensors").write_bytes(b"x")
    (tmp_path / "asr.csv").write_text("a\n")
    (tmp_path / ".hidden").write_text("x")
    links = folder_links(tmp_path, max_per_folder=3)
    assert links[0] == ("", [("asr.csv", "asr.csv")], 1)
    folder, files, total = links[1]
    assert folder == "adv" and total == 5 and len(files) == 3
    assert files[0] == ("clip 0.safetensors", "adv/clip%200.safetensors")
    text = write_html_report(tmp_path, "t", [], links=links).read_text()
    assert "(5 files, the first 3 listed)" in text and 'href="adv/clip%200.safetensors"' in text
