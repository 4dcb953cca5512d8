"""Checkpoints as safetensors + JSON (never pickle), written atomically.

Layout of a run directory:

    checkpoints/
        latest                      the name of the newest complete checkpoint ("step_000050")
        step_000050/
            attacker.safetensors    one file per tensor group (weights, EMA, optimiser state, RNG, ...)
            defender.safetensors
            state.json              everything else: step, data positions, schedulers, RNG meta, ...
            manifest.json           format version, step, the tensor groups the directory must hold, and
                                    the sha256 of every other file (written as it is saved)

A checkpoint is written into ``checkpoints/.tmp-step_N/``; every file is fsynced, then the directory is
renamed into place and only then is ``latest`` replaced (temp file + ``os.replace``). A crash at any point
leaves the previous checkpoint and ``latest`` untouched; leftover temp directories are removed by the
next save. Older checkpoints beyond ``keep_last`` are deleted only after a successful write.

Loading checks every file against the manifest's sha256 (flipped bytes in a tensor file would otherwise load
as silently changed weights). `load_checkpoint(run_dir)` falls back from a damaged newest checkpoint to the
newest intact older one, logging a warning that names the damaged file; with none intact it raises
`CheckpointError` naming it. A checkpoint directory given directly is never replaced by another one.

Torch state that is neither a flat tensor dict nor JSON (optimiser state dicts, RNG states) is split by
`flatten_optimizer_state` / `rng_state` into a tensor dict and a JSON-able meta dict, and put back
together exactly by `unflatten_optimizer_state` / `set_rng_state`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from advgame.errors import AdvGameError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
LATEST = "latest"
_STEP_DIR = re.compile(r"^step_(\d+)$")
_GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TEMP_PREFIXES = (".tmp-", ".old-", ".del-")


class CheckpointError(AdvGameError, RuntimeError):
    """A checkpoint could not be written or read; the message names the path."""


# ---------------------------------------------------------------------------------------------- save


def save_checkpoint(
    run_dir: Path, step: int, tensors: dict[str, dict[str, torch.Tensor]], state: dict, keep_last: int
) -> Path:
    """Write ``run_dir/checkpoints/step_{step:06d}/`` atomically, point ``latest`` at it, rotate old ones.

    `tensors` maps a group name (a file name: letters, digits, ``_.-``) to a flat tensor dict; `state`
    must be JSON-serialisable (tuples come back as lists). Returns the checkpoint directory.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be at least 1, got {keep_last}")
    if step < 0:
        raise ValueError(f"step must be non-negative, got {step}")
    root = Path(run_dir) / "checkpoints"
    name = f"step_{step:06d}"
    final, tmp, old = root / name, root / f".tmp-{name}", root / f".old-{name}"
    for group in tensors:
        if not _GROUP_NAME.match(group):
            raise CheckpointError(
                f"tensor group name {group!r} is not a valid file name (checkpoint {final})"
            )
    try:
        state_text = json.dumps(state, indent=1)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint state for {final} is not JSON-serialisable: {err}") from err
    manifest = {"format": FORMAT_VERSION, "step": step, "tensors": sorted(tensors), "sha256": {}}

    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    moved_old = False
    try:
        tmp.mkdir()
        for group, group_tensors in tensors.items():
            path = tmp / f"{group}.safetensors"
            save_file(_saveable(group_tensors, group), str(path), metadata={"format": "pt"})
            manifest["sha256"][path.name] = _fsync_file(path)
        _write_text(tmp / "state.json", state_text)
        manifest["sha256"]["state.json"] = hashlib.sha256(state_text.encode("utf-8")).hexdigest()
        _write_text(tmp / "manifest.json", json.dumps(manifest, indent=1))
        _fsync_dir(tmp)
        if final.exists():  # re-saving a step: keep the old copy until the new one is in place
            os.replace(final, old)
            moved_old = True
        os.replace(tmp, final)
        _fsync_dir(root)
        _write_text(root / f".tmp-{LATEST}", name + "\n")
        os.replace(root / f".tmp-{LATEST}", root / LATEST)
        _fsync_dir(root)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if moved_old and not final.exists():
            os.replace(old, final)
        if isinstance(err, Exception) and not isinstance(err, CheckpointError):
            raise CheckpointError(f"could not write checkpoint {final}: {type(err).__name__}: {err}") from err
        raise
    if moved_old:
        shutil.rmtree(old, ignore_errors=True)
    _rotate(root, keep_last, keep=name)
    log.info("saved checkpoint %s", final)
    return final


def _saveable(group: dict[str, torch.Tensor], group_name: str) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors with no shared storage (what safetensors accepts), copying only when needed."""
    out: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for key, t in group.items():
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{group_name}[{key!r}] is a {type(t).__name__}, not a tensor")
        t = t.detach()
        if t.device.type != "cpu":
            t = t.to("cpu", memory_format=torch.contiguous_format)  # a fresh copy
        elif t.numel() and (not t.is_contiguous() or t.untyped_storage().data_ptr() in storages):
            t = t.clone(memory_format=torch.contiguous_format)
        if t.numel():
            storages.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def _rotate(root: Path, keep_last: int, keep: str) -> None:
    """Delete complete checkpoints beyond the newest `keep_last` (never `keep`), via a rename first."""
    steps = sorted(_step_dirs(root), key=lambda p: int(_STEP_DIR.match(p.name)[1]))
    for path in steps[:-keep_last]:
        if path.name == keep:
            continue
        doomed = root / f".del-{path.name}"
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def _remove_leftovers(root: Path) -> None:
    for path in root.iterdir():
        if path.name.startswith(_TEMP_PREFIXES):
            if path.name.startswith(".old-") and not (root / path.name[len(".old-") :]).exists():
                os.replace(
                    path, root / path.name[len(".old-") :]
                )  # a crash mid re-save: restore the old copy
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _step_dirs(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)] if root.is_dir() else []


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> str:
    """fsync `path`; returns its sha256 (read back from what was written)."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        return _sha256(f)


def _sha256(f) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 22), b""):
        digest.update(block)
    return digest.hexdigest()


def has_checkpoint(run_dir: Path | str) -> bool:
    """Whether `run_dir` holds a complete checkpoint (a directory renamed into place; temp ones do not
    count)."""
    root = Path(run_dir) / "checkpoints"
    return bool(_step_dirs(root))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms that cannot open directories (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------- load


def find_checkpoint(path: Path | str) -> Path:
    """The checkpoint directory `path` names: itself, or the one `latest` points to in a run directory."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the path does not exist")
    if (path / "manifest.json").exists() or (path / "state.json").exists() or _STEP_DIR.match(path.name):
        return path
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    pointer = root / LATEST
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        if not _STEP_DIR.match(name):
            raise CheckpointError(f"{pointer} is corrupt: {name[:40]!r} is not a checkpoint name")
        target = root / name
        if not target.is_dir():
            hint = (
                f" (a copy interrupted mid re-save is at {root / ('.old-' + name)})"
                if (root / f".old-{name}").exists()
                else ""
            )
            raise CheckpointError(f"{pointer} points at {target}, which does not exist{hint}")
        return target
    steps = sorted(_step_dirs(root), key=lambda p: int(_STEP_DIR.match(p.name)[1]))
    if not steps:
        raise CheckpointError(
            f"no checkpoint found in {path} (expected {root / LATEST} or step_N directories)"
        )
    log.warning("%s has no '%s' pointer; using the newest checkpoint %s", root, LATEST, steps[-1].name)
    return steps[-1]


def load_checkpoint(path: Path | str) -> tuple[dict[str, dict[str, torch.Tensor]], dict, Path]:
    """(tensor groups on CPU, state, checkpoint dir) from a run directory (follows `latest`) or a
    checkpoint directory. Raises `CheckpointError` naming the path if it is missing, incomplete or corrupt.

    From a run directory, a newest checkpoint that fails its checks is skipped for the newest intact older one
    (a warning names the damaged file); the error names every damaged file when none is intact."""
    ckpt = find_checkpoint(path)
    try:
        return (*_load_dir(ckpt), ckpt)
    except CheckpointError as first:
        if ckpt == Path(path) or not _STEP_DIR.match(ckpt.name):
            raise  # a checkpoint directory named explicitly: never substitute another one
        problems = [str(first)]
        older = sorted(
            (p for p in _step_dirs(ckpt.parent) if p != ckpt),
            key=lambda p: int(_STEP_DIR.match(p.name)[1]),
            reverse=True,
        )
        for candidate in older:
            try:
                tensors, state = _load_dir(candidate)
            except CheckpointError as err:
                problems.append(str(err))
                continue
            log.warning("%s; falling back to the previous intact checkpoint %s", first, candidate)
            return tensors, state, candidate
        raise CheckpointError(
            "; ".join(problems) + ("" if older else " (and no older checkpoint to fall back to)")
        )


def _load_dir(ckpt: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    manifest = _read_json(ckpt / "manifest.json", ckpt)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tensors"), list):
        raise CheckpointError(f"checkpoint {ckpt} is corrupt: manifest.json has no 'tensors' list")
    if manifest.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {ckpt} has format {manifest['format']}; this advgame reads up to {FORMAT_VERSION}"
        )
    sums = manifest.get("sha256") or {}
    if not isinstance(sums, dict):
        raise CheckpointError(f"checkpoint {ckpt} is corrupt: manifest.json 'sha256' is not a mapping")
    files = [ckpt / f"{group}.safetensors" for group in manifest["tensors"]]
    for file in [ckpt / "state.json"] + files:
        if not file.is_file():
            raise CheckpointError(f"checkpoint {ckpt} is incomplete: {file.name} is missing")
        expected = sums.get(file.name)
        if expected is not None:
            with open(file, "rb") as f:
                actual = _sha256(f)
            if actual != expected:
                raise CheckpointError(
                    f"checkpoint {ckpt} is corrupt: {file} does not match its recorded sha256 "
                    f"({actual[:12]}... instead of {str(expected)[:12]}...)"
                )
    state = _read_json(ckpt / "state.json", ckpt)
    tensors = {}
    for group, file in zip(manifest["tensors"], files, strict=True):
        try:
            tensors[group] = load_file(str(file), device="cpu")
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(f"checkpoint {ckpt} is corrupt: cannot read {file.name} ({err})") from err
    return tensors, state


def _read_json(file: Path, ckpt: Path) -> Any:
    if not file.is_file():
        raise CheckpointError(f"checkpoint {ckpt} is incomplete: {file.name} is missing")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint {ckpt} is corrupt: {file.name} is not valid JSON ({err})") from err


# ----------------------------------------------------------------------- torch state <-> tensors + JSON


def _encode(obj: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    """JSON-able form of `obj`; tensors move into `tensors` under their path and leave a reference."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj
        return {"__tensor__": path}
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if type(obj).__module__ == "numpy":
        if hasattr(obj, "shape") and obj.shape != ():
            return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
        return _encode(obj.item(), tensors, path)
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors, f"{path}.{k}") for k, v in obj.items()}
        return {
            "__dict__": [
                [_encode(k, tensors, path), _encode(v, tensors, f"{path}.{k}")] for k, v in obj.items()
            ]
        }
    raise TypeError(f"cannot store a {type(obj).__name__} at '{path}' in a checkpoint")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        key = obj["__tensor__"]
        if key not in tensors:
            raise CheckpointError(f"checkpoint tensors lack '{key}'")
        return tensors[key]
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__ndarray__" in obj:
        import numpy as np

        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__dict__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__dict__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def flatten_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split `optimizer.state_dict()` into (tensors, JSON-able meta); see `unflatten_optimizer_state`."""
    tensors: dict[str, torch.Tensor] = {}
    meta = {"format": FORMAT_VERSION, "state_dict": _encode(state_dict, tensors, "optim")}
    return tensors, meta


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """The state dict that `flatten_optimizer_state` split; load it with `optimizer.load_state_dict`."""
    return _decode(meta["state_dict"], tensors)


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, JSON-able meta) capturing the torch CPU and CUDA generators, `random` and `numpy.random`."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    meta: dict[str, Any] = {"python": _encode(random.getstate(), {}, "python"), "cuda_devices": 0}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states = torch.cuda.get_rng_state_all()
        tensors.update({f"torch_cuda_{i}": s for i, s in enumerate(states)})
        meta["cuda_devices"] = len(states)
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        meta["numpy"] = _encode(np.random.get_state(), {}, "numpy")
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Restore what `rng_state` captured. CUDA states are restored when the device count matches."""
    torch.set_rng_state(tensors["torch_cpu"].to(torch.uint8))
    random.setstate(_decode(meta["python"], {}))
    n_cuda = int(meta.get("cuda_devices", 0))
    if n_cuda:
        if torch.cuda.is_available() and torch.cuda.device_count() == n_cuda:
            torch.cuda.set_rng_state_all([tensors[f"torch_cuda_{i}"].to(torch.uint8) for i in range(n_cuda)])
        else:
            log.warning("checkpoint holds %d CUDA RNG states; not restored on this machine", n_cuda)
    if "numpy" in meta:
        import numpy as np

        np.random.set_state(_decode(meta["numpy"], {}))
