"""vidadv.evaluation: what a finished attack run means.

ASR tables, Table-1 black-box averages, Figure-3 plots, the paper's published numbers (`paper`) and the
HTML / CSV / Markdown report writers (`report`).
"""

from vidadv.evaluation.paper import PAPER_NUMBERS
from vidadv.evaluation.report import (
    AsrMatrix,
    AsrRow,
    clip_to_gif,
    plot_asr_bars,
    write_asr_tables,
    write_html_report,
)

__all__ = [
    "PAPER_NUMBERS",
    "AsrMatrix",
    "AsrRow",
    "clip_to_gif",
    "plot_asr_bars",
    "write_asr_tables",
    "write_html_report",
]
