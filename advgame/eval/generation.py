"""Answer every item once, in batches, with fixed decoding, through the answer cache.

Items already in the cache are not generated again. Each batch is appended to the cache as soon as it is
done, so a kill loses at most the batch in flight. A failed endpoint call (Completion.error) is not
cached: the item is undecided in this run and retried by the next one.

Reproducibility: greedy decoding (temperature 0, the default) gives the same answers however the work was
split across runs. With sampling, each batch is seeded from its first item's id; a resumed run draws the
remaining items in other batches, so its answers are a different (equally valid) sample.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from advgame.backends.base import GenerationBackend
from advgame.config.schema import SamplingConfig
from advgame.eval.benchmarks.base import EvalItem
from advgame.eval.cache import JsonlCache, fingerprint
from advgame.eval.results import slug


class StopAfter(Exception):
    """Raised when `stop_after` new answers were generated (tests use it to simulate a kill)."""


def _seed(item_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{item_id}".encode()).digest()[:4], "little") >> 1


def answer_benchmark(
    spec, target, name: str, items: Sequence[EvalItem], decoding: dict, stop_after: int | None = None
) -> dict[str, dict]:
    """`answer_items` for one benchmark of an eval run, cached in OUT/answers/<name>.jsonl under the model,
    its `decoding` record and the seed (a change of any of them starts a fresh cache)."""
    cache = JsonlCache(
        spec.output_dir / "answers" / f"{slug(name)}.jsonl",
        fingerprint({"model": target.name, "decoding": decoding, "seed": spec.seed}),
    )
    return answer_items(
        target.backend,
        items,
        spec.sampling,
        cache,
        seed=spec.seed,
        label=name,
        stop_after=stop_after,
        show_progress=spec.show_progress,
    )


def answer_items(
    backend: GenerationBackend,
    items: Sequence[EvalItem],
    sampling: SamplingConfig,
    cache: JsonlCache,
    *,
    seed: int = 0,
    label: str = "",
    stop_after: int | None = None,
    show_progress: bool = True,
) -> dict[str, dict]:
    """item id -> {"response", "truncated", "error"}; generates only what the cache lacks."""
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(
                f"{label or 'benchmark'}: item id {item.id!r} appears twice in its data; ids must be "
                "unique (remove the duplicate row)"
            )
        seen.add(item.id)
    todo = [i for i in items if cache.get(i.id) is None]
    results: dict[str, dict] = {i.id: cache.get(i.id) for i in items if cache.get(i.id) is not None}
    done_new = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not show_progress or not todo, transient=True) as progress:
        task = progress.add_task(f"answering {label}", total=len(items), completed=len(items) - len(todo))
        for start in range(0, len(todo), sampling.batch_size):
            batch = todo[start : start + sampling.batch_size]
            if stop_after is not None:
                batch = batch[: max(0, stop_after - done_new)]
                if not batch:
                    raise StopAfter(f"stopped after {done_new} new answers")
            outs = backend.generate(
                [[{"role": "user", "content": i.prompt}] for i in batch],
                sampling,
                seed=_seed(batch[0].id, seed),
            )
            records = []
            for item, out in zip(batch, outs, strict=True):
                rec = {"key": item.id, "response": out.text, "truncated": out.truncated, "error": out.error}
                results[item.id] = rec
                if not out.error:
                    records.append(rec)
            cache.add(records)
            done_new += len(batch)
            progress.advance(task, len(batch))
    if len(results) < len(items):
        raise StopAfter(f"stopped after {done_new} new answers")
    return results
