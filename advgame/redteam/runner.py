"""Run attacks x behaviours against a target, classify every attempt, log it, and summarise.

    out/attempts.jsonl   every attempt (see `store`), appended per unit; resumable after a kill
    out/summary.json     kind "redteam" (schema shared with `advgame report`), rewritten after every unit
    out/summary.md       the Markdown table
    out/run.json         the run's settings; a rerun into the same dir must use the same ones

Units already complete in attempts.jsonl are skipped, so rerunning the same command resumes a killed run
(and a larger --limit extends a finished one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from advgame.atomic import write_json_atomic
from advgame.eval.classifiers import Classifier, ClassifyItem, classifier_id
from advgame.redteam.attacks.base import Attack, Candidate
from advgame.redteam.behaviors import Behavior
from advgame.redteam.store import AttemptLog
from advgame.redteam.summary import build_summary, markdown_table
from advgame.targets import Target

ATTEMPTS, SUMMARY, SUMMARY_MD, SETTINGS = "attempts.jsonl", "summary.json", "summary.md", "run.json"


class SettingsMismatch(ValueError):
    """The output directory holds a run made with other settings."""


def check_settings(out_dir: Path, settings: dict) -> None:
    """Record `settings` in out/run.json, or check that they match the recorded ones."""
    path = out_dir / SETTINGS
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            shown = "; ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in diff[:4])
            raise SettingsMismatch(
                f"{out_dir} holds a run with other settings ({shown}); use another --out, or the same "
                "settings to resume it"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def classify(classifier: Classifier, behavior: Behavior, cands: Sequence[Candidate]) -> list[dict]:
    """One attempt record per candidate, with the classifier's verdict and the success flag."""
    sent = [i for i, c in enumerate(cands) if c.response is not None and c.error is None]
    verdicts = dict(
        zip(
            sent,
            classifier.classify(
                [
                    ClassifyItem(
                        request=cands[i].prompt or "",
                        response=cands[i].response or "",
                        behavior=behavior.text,
                        context=behavior.context,
                    )
                    for i in sent
                ]
            ),
            strict=True,
        )
    )
    records = []
    for i, c in enumerate(cands):
        v = verdicts.get(i)
        if v is not None:
            verdict, success = (
                {"refused": v.refused, "harmful": v.harmful, "error": v.error},
                v.attack_success,
            )
        elif c.error in (
            "attacker_parse",
            "budget",
            "no_reply",
        ):  # never sent: nothing was attempted, undecided
            verdict, success = {"refused": None, "harmful": None, "error": c.error}, None
        else:  # the target failed to answer (after retries): undecided, never scored
            verdict, success = {"refused": None, "harmful": None, "error": c.error or "no response"}, None
        records.append(
            {
                "attack": "",
                "behavior_id": behavior.id,
                "behavior": behavior.text,
                "category": behavior.category,
                "attempt": i,
                "prompt": c.prompt,
                "response": c.response,
                "verdict": verdict,
                "success": success,
                "queries": c.queries,
                "elapsed_s": round(c.elapsed_s, 3),
                "error": c.error,
                "info": c.info,
            }
        )
    return records


def run_redteam(
    target: Target,
    attacks: Sequence[Attack],
    behaviors: Sequence[Behavior],
    classifier: Classifier,
    out_dir: Path,
    *,
    behaviors_name: str,
    progress: bool = True,
    console=None,
) -> dict:
    """Run every (attack, behaviour) unit not yet in out/attempts.jsonl; return the summary (all units)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log = AttemptLog(out_dir / ATTEMPTS)
    done = log.done()
    todo = [(a, b) for a in attacks for b in behaviors if (a.name, b.id) not in done]
    skipped = len(attacks) * len(behaviors) - len(todo)
    if console is not None and (skipped or log.dropped):
        console.print(
            f"resuming {out_dir}: {skipped} unit(s) already done, {log.dropped} partial record(s) dropped"
        )
    budgets = {a.name: a.budget_info() for a in attacks}
    wanted = {b.id for b in behaviors}
    meta = {
        "target": target.name,
        "classifier": classifier_id(classifier),
        "behaviors": behaviors_name,
        "n_behaviors": len(behaviors),
    }

    def summarise() -> dict:
        recs = [r for r in log.records if r["behavior_id"] in wanted and r["attack"] in budgets]
        summary = build_summary(recs, budgets, **meta)
        write_json_atomic(out_dir / SUMMARY, summary)
        (out_dir / SUMMARY_MD).write_text(markdown_table(summary), encoding="utf-8")
        return summary

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not progress,
        transient=False,
    ) as bar:
        task = bar.add_task("red-team", total=len(todo))
        for attack, behavior in todo:
            bar.update(task, description=f"{attack.name}: {behavior.id}"[:48])
            t0 = time.monotonic()
            cands = attack.run(behavior, target)
            records = classify(classifier, behavior, cands)
            for r in records:
                r["attack"] = attack.name
            if not records:
                records = [
                    {
                        "attack": attack.name,
                        "behavior_id": behavior.id,
                        "behavior": behavior.text,
                        "attempt": 0,
                        "prompt": None,
                        "response": None,
                        "verdict": None,
                        "success": None,
                        "queries": 0,
                        "elapsed_s": round(time.monotonic() - t0, 3),
                        "error": "no_attempt",
                    }
                ]
            log.append_unit(records)
            summarise()
            bar.advance(task)
    return summarise()
