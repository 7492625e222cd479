"""The quick demo's report.html, and a report with a long title, opened in a real headless Chromium
at desktop and phone widths.

Uses the shared browser check (`../shared/tools/browser/run.sh REPORT.html OUTDIR`: puppeteer-core with the
Chromium of the npm package @sparticuz/chromium, installed by npm on first use into
~/.cache/vidadv-browser or $VIDADV_BROWSER_CACHE). Skipped only when node, npm or that shared check
is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from vidadv.evaluation.report import Section, write_html_report

BROWSER_CHECK = Path(__file__).resolve().parents[2].parent / "shared" / "tools" / "browser" / "run.sh"
MISSING = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
if (
    not BROWSER_CHECK.is_file()
):  # like the reference data, the check lives in the shared folder beside the repo
    MISSING.append(f"the browser check {BROWSER_CHECK}")


@pytest.mark.slow
@pytest.mark.skipif(
    bool(MISSING),
    reason=f"{' and '.join(MISSING)} missing: the browser check needs node, npm and ../shared/tools/browser",
)
def test_quick_demo_report_renders_cleanly_on_desktop_and_phone(
    quick_demo: tuple[Path, int], tmp_path: Path
) -> None:
    out, code = quick_demo
    assert code == 0
    report = out / "report.html"
    done = subprocess.run(
        ["bash", str(BROWSER_CHECK), str(report), str(tmp_path / "shots")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    text = report.read_text()
    expected_images = text.count("<img ")
    for view in ("desktop", "phone"):
        page = summary[view]
        assert page["console_errors"] == [] and page["page_errors"] == [], (view, page)
        assert page["failed_loads"] == [], (view, page["failed_loads"])
        assert page["images"] == expected_images > 0 and page["images_not_loaded"] == [], (view, page)
        assert page["viewport_meta"] is True, view
        assert page["links"] >= 10, (view, page["links"])  # the run folder's files are linked
        assert (tmp_path / "shots" / f"{view}.png").is_file()
    assert summary["phone"]["overflow_px"] == 0
    # page weight: the HTML and every image it shows (linked files, not base64)
    weight = len(report.read_bytes()) + sum(
        p.stat().st_size for p in out.rglob("*.png") if f'src="{p.relative_to(out).as_posix()}"' in text
    )
    assert weight < 1_000_000, weight


@pytest.mark.slow
@pytest.mark.skipif(
    bool(MISSING),
    reason=f"{' and '.join(MISSING)} missing: the browser check needs node, npm and ../shared/tools/browser",
)
def test_long_run_names_wrap_instead_of_widening_the_phone_page(tmp_path: Path) -> None:
    # `vidadv evaluate` titles its report after the run's name, e.g. "embedded_transformer_transfer":
    # one long word that must wrap on a phone
    name = "embedded_transformer_transfer_with_a_longer_name"
    report = write_html_report(
        tmp_path / "report",
        f"vidadv evaluation: {name}",
        [Section(f"Results of {name}_{name}", text=f"run folder runs/{name}/{name}")],
    )
    done = subprocess.run(
        ["bash", str(BROWSER_CHECK), str(report), str(tmp_path / "shots")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["phone"]["overflow_px"] == 0 and summary["desktop"]["overflow_px"] == 0, summary
