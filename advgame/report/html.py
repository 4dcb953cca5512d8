"""Assemble the report as one self-contained HTML page (figures inline as PNG data URIs, no scripts, no
external files). Every piece of text from a run or a result file is HTML-escaped: attacker rewrites and
model answers are untrusted and may contain markup."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from advgame import __version__
from advgame.report import figures
from advgame.report.data import Report, example_attacks

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; }
pre { white-space: pre-wrap; word-break: break-word; background: #f8f8f8; padding: .5em; margin: 0;
      max-height: 14em; overflow: auto; font-size: .85em; }
.muted { color: #777; } .example { border: 1px solid #ddd; padding: .8em; margin: 1em 0; border-radius: 4px; }
"""


def _e(value) -> str:
    return escape("" if value is None else str(value))


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def _ci(ci) -> str:
    return "-" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _img(uri: str | None, alt: str) -> str:
    if uri is None:
        return f'<p class="muted">No data for: {_e(alt)}.</p>'
    return f'<img src="{uri}" alt="{_e(alt)}">'


def eval_table(evals: list[dict]) -> str:
    head = ("model", "benchmark", "axis", "metric", "classifier", "n", "undecided", "value", "95% CI")
    rows = []
    for r in sorted(evals, key=lambda r: (r.get("axis", ""), r.get("benchmark", ""), r.get("model", ""))):
        arrow = "↑" if r.get("higher_is_better") else "↓"
        rows.append(
            f"<tr><td>{_e(r.get('model'))}</td><td>{_e(r.get('benchmark'))}</td><td>{_e(r.get('axis'))}</td>"
            f"<td>{_e(r.get('metric'))} {arrow}</td><td>{_e(r.get('classifier'))}</td>"
            f"<td class=num>{_num(r.get('n'))}</td><td class=num>{_num(r.get('n_undecided'))}</td>"
            f"<td class=num>{_num(r.get('value'))}</td><td class=num>{_ci(r.get('ci95'))}</td></tr>"
        )
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"


def redteam_table(summary: dict) -> str:
    head = (
        "attack",
        "n",
        "successes",
        "undecided",
        "ASR",
        "95% CI",
        "queries",
        "queries / success",
        "wall s",
    )
    rows = []
    for r in summary.get("rows", []):
        rows.append(
            f"<tr><td>{_e(r.get('attack'))}</td><td class=num>{_num(r.get('n'))}</td>"
            f"<td class=num>{_num(r.get('successes'))}</td><td class=num>{_num(r.get('n_undecided'))}</td>"
            f"<td class=num>{_num(r.get('asr'))}</td><td class=num>{_ci(r.get('ci95'))}</td>"
            f"<td class=num>{_num(r.get('queries'))}</td><td "
            f"class=num>{_num(r.get('queries_per_success'), 1)}</td><td "
            f"class=num>{_num(r.get('wall_s'), 1)}</td></tr>"
        )
    caption = (
        f"target <b>{_e(summary.get('target'))}</b>, behaviours {_e(summary.get('behaviors'))} "
        f"(n={_e(summary.get('n_behaviors'))}), classifier {_e(summary.get('classifier'))}"
    )
    return (
        f"<p>{caption}</p><table><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


def examples_html(rollouts: list[dict]) -> str:
    examples = example_attacks(rollouts)
    if not examples:
        return '<p class="muted">No training rollouts of the harmful split in this run.</p>'
    parts = []
    for ex in examples:
        answers = (
            "".join(
                f"<tr><td><pre>{_e(a.get('text'))}</pre></td><td>{_e(a.get('status'))}</td>"
                f"<td class=num>{_num(a.get('score'), 2)}</td><td "
                f"class=num>{_num(a.get('reward'), 2)}</td></tr>"
                for a in ex["answers"]
            )
            or '<tr><td colspan=4 class="muted">no Defender answer (the rewrite was not valid)</td></tr>'
        )
        kind = "seed as written (direct)" if ex["direct"] else f"Attacker rewrite, status {_e(ex['status'])}"
        parts.append(
            f'<div class="example"><p><b>Seed</b> (step {_e(ex["step"])})</p><pre>{_e(ex["seed"])}</pre>'
            f"<p><b>{kind}</b></p><pre>{_e(ex['rewrite'])}</pre>"
            "<p><b>Defender answers</b> with the Defender judge's verdict (score 0-10 under the deflection "
            "rubric for harmful seeds) and the reward</p><table><tr><th>answer</th><th>status</th><th>judge "
            f"score</th><th>reward</th></tr>{answers}</table></div>"
        )
    return "".join(parts)


def render(report: Report) -> str:
    title = f"advgame report: {report.run_dir.name}" if report.run_dir else "advgame report"
    sections = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">advgame {_e(__version__)}, generated '
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
        + (f", run directory {_e(report.run_dir)}" if report.run_dir else "")
        + "</p>",
    ]
    if report.run_dir is not None:
        sections += [
            "<h2>Training curves</h2>",
            _img(figures.training_curves(report.metrics), "training curves"),
        ]
    if report.evals:
        sections += [
            "<h2>Safety-compliance frontier</h2>",
            _img(
                figures.frontier(report.evals),
                "frontier (needs at least one safety and one over-refusal result per model)",
            ),
            "<h2>Benchmarks</h2>",
            _img(figures.benchmark_bars(report.evals), "benchmark bars"),
            eval_table(report.evals),
        ]
    for summary in report.redteams:
        sections += ["<h2>Red-team attacks</h2>", redteam_table(summary)]
    if report.run_dir is not None:
        sections += ["<h2>Example attacks (latest step)</h2>", examples_html(report.rollouts)]
    if report.skipped:
        sections.append(
            "<h2>Skipped inputs</h2><ul>" + "".join(f"<li>{_e(s)}</li>" for s in report.skipped) + "</ul>"
        )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>{''.join(sections)}</body></html>\n"
    )
