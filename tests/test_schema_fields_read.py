"""Every leaf of the run config is read by some code: a field that nothing reads is a setting that silently
does nothing (as `loss.clip_rejected_on_truncation` once did).

For each leaf field `section.name`, the package source outside the schema must contain an attribute access
`.name`. That is a necessary condition, not a proof (another object may have an attribute of that name), so
the test catches fields that are read nowhere at all. Fields read by name rather than by attribute are
listed in READ_BY_NAME with where they are read; each entry is checked to still appear in that file."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from advgame.config.schema import RunConfig, Section

PACKAGE = Path(__file__).resolve().parents[1] / "advgame"
SCHEMA = PACKAGE / "config" / "schema.py"

# field path -> (file under advgame/, the text that reads it). Only for reads that are not `.name` accesses.
READ_BY_NAME = {
    "data.harmful": (
        "train/setup.py",
        "getattr(cfg.data, category)",
    ),  # the category loop over (harmful, benign)
    "data.benign": ("train/setup.py", "getattr(cfg.data, category)"),
    "data.valid_harmful": ("train/setup.py", 'getattr(cfg.data, f"valid_{category}")'),
    "data.valid_benign": ("train/setup.py", 'getattr(cfg.data, f"valid_{category}")'),
    # judges.<role> is read through JudgesConfig.for_role(role) = getattr(self, role) (in the schema itself)
    "judges.faithfulness": ("train/setup.py", "cfg.judges.for_role"),
    "judges.defender": ("train/setup.py", "cfg.judges.for_role"),
    "judges.attacker": ("train/setup.py", "cfg.judges.for_role"),
}


def _model_types(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return [annotation]
    return [t for arg in getattr(annotation, "__args__", ()) for t in _model_types(arg)]


def leaf_fields(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Dotted paths of every field that is a value, not a section (a section's fields are walked instead)."""
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        subs = _model_types(field.annotation)
        if subs and path not in READ_BY_NAME:
            for sub in subs:
                out += leaf_fields(sub, path + ".")
        else:
            out.append(path)
    return out


def _source() -> str:
    return "\n".join(p.read_text() for p in PACKAGE.rglob("*.py") if p != SCHEMA)


def test_every_config_leaf_is_read_somewhere():
    source = _source()
    unread = []
    for path in leaf_fields():
        if path in READ_BY_NAME:
            where, text = READ_BY_NAME[path]
            assert text in (PACKAGE / where).read_text(), (
                f"{path}: READ_BY_NAME says {where} reads it with {text!r}"
            )
            continue
        name = path.rsplit(".", 1)[-1]
        if not re.search(rf"\.{re.escape(name)}\b", source):
            unread.append(path)
    assert not unread, f"config fields that no code reads: {unread}"


def test_the_walk_sees_the_whole_schema():
    leaves = leaf_fields()
    assert len(leaves) > 80
    assert {
        "loss.clip_rejected_on_truncation",
        "attacker.compute_dtype",
        "defender.lora.r",
        "judges.default.order_swap",
        "train.sharding.param_dtype",
        "game.split_sampling_weights",
    } <= set(leaves)


def test_every_eval_and_redteam_config_leaf_is_read_somewhere():
    from advgame.eval.config import EvalConfig
    from advgame.redteam.config import RedteamConfig

    source = _source()
    for schema in (EvalConfig, RedteamConfig):
        leaves = leaf_fields(schema)
        assert {"model.path", "target.url", "judge.max_new_tokens"} & set(leaves)
        unread = [p for p in leaves if not re.search(rf"\.{re.escape(p.rsplit('.', 1)[-1])}\b", source)]
        assert not unread, f"{schema.__name__} fields that no code reads: {unread}"
