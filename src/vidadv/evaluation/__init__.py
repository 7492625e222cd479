"""vidadv.evaluation: what a finished attack run means.

`outcomes`: the outcomes table fooled[white-box, attack, clip, model] and the pure ASR functions over it
(ASR matrix, Table-1 black-box averages, paired differences); `report`: tables, lossless clip frames, the
HTML report (jinja2 template `templates/report.html.j2`) and `ReportWriter`, the one writer of every
command's report; `plots`: the per-model palette and every transfer plot; `findings`: the sentences that
open a report; `ablation`: TT ablation variants and
their grouping (Figure 4, Table 2); `frontier`: the ASR-versus-gradient-evaluations frontier (attack
costs, methods, points); `paper`: the paper's published numbers.
"""

from vidadv.evaluation.findings import findings_sentences
from vidadv.evaluation.outcomes import (
    LISTED,
    SELECTED,
    Outcome,
    Outcomes,
    asr_matrix,
    blackbox_cell,
    build_outcomes,
    paired_differences,
    table1,
)
from vidadv.evaluation.paper import PAPER_NUMBERS
from vidadv.evaluation.plots import model_color, plot_forest, plot_transfer_bars
from vidadv.evaluation.report import (
    AsrMatrix,
    AsrRow,
    ReportWriter,
    clip_to_png,
    plot_asr_bars,
    write_asr_tables,
    write_html_report,
)

__all__ = [
    "LISTED",
    "PAPER_NUMBERS",
    "SELECTED",
    "AsrMatrix",
    "AsrRow",
    "Outcome",
    "Outcomes",
    "ReportWriter",
    "asr_matrix",
    "blackbox_cell",
    "build_outcomes",
    "clip_to_png",
    "findings_sentences",
    "model_color",
    "paired_differences",
    "plot_asr_bars",
    "plot_forest",
    "plot_transfer_bars",
    "table1",
    "write_asr_tables",
    "write_html_report",
]
