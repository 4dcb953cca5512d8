"""`advgame report` on a fixture run (real metrics/rollouts keys) and result files: a self-contained page
with embedded PNG figures, the eval and redteam tables, examples, and untrusted text escaped."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

from advgame.cli import main
from advgame.report.data import example_attacks, load_report

FIX = Path(__file__).parent / "fixtures" / "eval"
RUN = FIX / "report_run"
RESULTS = FIX / "results"


def render(tmp_path: Path, *args: str) -> str:
    out = tmp_path / "report.html"
    assert main(["report", *args, "-o", str(out)]) == 0
    return out.read_text()


def test_report_embeds_png_figures_and_tables(tmp_path):
    page = render(tmp_path, str(RUN), str(RESULTS))
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3  # training curves, frontier, per-benchmark bars
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        'src="http' not in page
        and "<link" not in page
        and "<script" not in page.lower().replace("&lt;script", "")
    )
    assert "Red-team attacks" in page and "28.5" in page and "131.2" in page  # queries/success, wall s
    assert "[0.000, 0.800]" in page  # the pair attack's CI
    assert "run-final-defender" in page and "ifeval" in page


def test_untrusted_text_is_escaped(tmp_path):
    page = render(tmp_path, str(RUN), str(RESULTS))
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror" in page
    assert "<i>gcg</i>" not in page and "&lt;i&gt;gcg&lt;/i&gt;" in page
    assert "<b>pipe</b>" not in page


def test_examples_come_from_the_latest_step_and_bad_lines_are_skipped():
    report = load_report(RUN, [RESULTS])
    assert any("rollouts.jsonl" in s for s in report.skipped)  # the truncated last line
    examples = example_attacks(report.rollouts)
    assert len(examples) == 1 and examples[0]["step"] == 4 and not examples[0]["direct"]
    assert [a["score"] for a in examples[0]["answers"]] == [8.5, 1.0]
    assert len(report.evals) == 5 and len(report.redteams) == 1


def test_results_only_and_errors(tmp_path, capsys):
    page = render(tmp_path, "-", str(RESULTS / "redteam_summary.json"))
    assert "Red-team attacks" in page and "Training curves" not in page
    assert main(["report", str(tmp_path)]) == 1
    assert "not a run directory" in capsys.readouterr().err


def test_run_without_metrics_values_still_renders(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 0}\n')
    shutil.copy(RUN / "rollouts.jsonl", run / "rollouts.jsonl")
    page = render(tmp_path, str(run))
    assert "No data for: training curves" in page
