"""Every command in the README runs as written, or at least still parses against the code it names.

The README's fenced code blocks are read, not copied: a renamed preset, a removed flag or subcommand, a moved
file or a changed API makes one of these tests fail.

Which commands run, and which are only checked (the rule):

* **Cheap, run as written** (each well under a few seconds, no model is loaded): an `advgame` or `python`
  command that ends in `--help`, `--version` or `--print-config`, and every `$ COMMAND` line of a plain
  fenced block, whose output must equal the lines shown under it.
* **Expensive, checked without running** (anything that loads a model, trains, serves, downloads or
  installs: `make demo`, `advgame train` without `--print-config`, `eval`, `redteam`, `serve`, `report`,
  `torchrun`, `accelerate launch`, `pip`, `curl`, the benchmark scripts):
  - `advgame train ARGS`: `advgame train ARGS --print-config` runs, which parses every flag and loads and
    validates the config with its overrides, and stops before any model is loaded;
  - other `advgame SUB ARGS` and `python SCRIPT ARGS`: every flag in ARGS appears in the `--help` of
    that subcommand or script, and every file argument exists;
  - `accelerate launch` / `torchrun`: their config file exists, and the `-m advgame ...` part is checked as
    above;
  - `make TARGET`: the Makefile has that target; `pip install`: every package or extra it names is one the
    Makefile or `pyproject.toml` names; `curl URL`: the served route exists in `advgame/serve/app.py`.
* **Shell set-up, not checked**: `python3 -m venv`, `.`/`source`, `export`.

A path under `runs/` is an output of an earlier README command (`advgame train ... --run-dir runs/demo`),
so it need not exist. A command of any other shape fails the test until this rule says how to check it.
The Python block runs as written on the tiny test model (`smollm2` replaced by `tiny-llama`).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 250
CHEAP_ENDINGS = ("--help", "--version", "--print-config")
SETUP_HEADS = {".", "source", "export"}


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every ``` fenced block, in order."""
    return [
        (m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    ]


def shell_commands(body: str) -> list[list[str]]:
    """A bash block's commands as argv lists: continuation lines joined, comments dropped, `&&` split."""
    commands = []
    for line in body.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        while tokens:
            cut = tokens.index("&&") if "&&" in tokens else len(tokens)
            commands.append(tokens[:cut])
            tokens = tokens[cut + 1 :]
    return [c for c in commands if c]


def console_commands(body: str) -> list[tuple[list[str], str]]:
    """`$ COMMAND` lines of a plain block, each with the output lines shown under it."""
    out: list[tuple[list[str], str]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            out.append((shlex.split(line[2:]), ""))
        elif out:
            out[-1] = (out[-1][0], out[-1][1] + line + "\n")
    return out


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def readme_shell_commands() -> list[list[str]]:
    return [
        c
        for lang, body in fenced_blocks(readme_text())
        if lang in ("bash", "sh")
        for c in shell_commands(body)
    ]


def readme_console_commands() -> list[tuple[list[str], str]]:
    return [c for lang, body in fenced_blocks(readme_text()) if lang == "" for c in console_commands(body)]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def _argv(cmd: list[str]) -> list[str]:
    """`advgame ...` and `python ...` run this checkout with the interpreter running the tests."""
    if cmd[0] == "advgame":
        return [sys.executable, "-m", "advgame", *cmd[1:]]
    if cmd[0] in ("python", "python3"):
        return [sys.executable, *cmd[1:]]
    raise AssertionError(f"not an advgame or python command: {shlex.join(cmd)}")


def run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        _argv(cmd), check=False, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )


@functools.cache
def help_text(*head: str) -> str:
    proc = run([*head, "--help"])
    assert proc.returncode == 0, f"{' '.join(head)} --help failed:\n{proc.stderr}"
    return proc.stdout


def flags(args: list[str]) -> list[str]:
    """`--flag`, `--flag=value` and `-f` arguments, without their values."""
    return [a.split("=", 1)[0] for a in args if re.match(r"-{1,2}[A-Za-z]", a)]


def is_file_arg(arg: str) -> bool:
    return (
        not arg.startswith("-")
        and "=" not in arg
        and ("/" in arg or arg.endswith((".yaml", ".yml", ".py", ".json", ".md")))
    )


def check_files(args: list[str]) -> None:
    for arg in args:
        if is_file_arg(arg) and not arg.startswith("runs/") and "://" not in arg:
            assert (ROOT / arg).exists(), f"the README names {arg}, which does not exist"


def check_advgame(args: list[str]) -> None:
    """`advgame SUB ARGS` (args after `advgame`), checked without running it."""
    sub, rest = args[0], args[1:]
    if sub == "train":
        proc = run(["advgame", "train", *rest, "--print-config"])
        assert proc.returncode == 0, f"advgame {shlex.join(args)}: {proc.stderr.strip()}"
        return
    text = help_text("advgame", sub)
    for flag in flags(rest):
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), f"advgame {sub} has no {flag}"
    check_files(rest)


def check_python(args: list[str]) -> None:
    """`python SCRIPT ARGS` or `python -m MODULE ARGS`, checked through the script's own --help."""
    if args[0] == "-m":
        head, rest = ["python", "-m", args[1], *args[2:3]], args[3:]
        if args[1] == "advgame":
            return check_advgame(args[2:])
    else:
        assert (ROOT / args[0]).is_file(), f"the README names {args[0]}, which does not exist"
        head, rest = ["python", args[0]], args[1:]
    text = help_text(*head)
    for flag in flags(rest):
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text), f"{' '.join(head)} has no {flag}"
    check_files(rest)


def check_launcher(cmd: list[str]) -> None:
    """`accelerate launch --config_file F ... -m advgame ...` or `torchrun ... -m advgame ...`."""
    if "--config_file" in cmd:
        config = cmd[cmd.index("--config_file") + 1]
        assert (ROOT / config).is_file(), f"the README names {config}, which does not exist"
    assert "-m" in cmd and cmd[cmd.index("-m") + 1] == "advgame", shlex.join(cmd)
    check_advgame(cmd[cmd.index("-m") + 2 :])


def declared_packages() -> str:
    return (ROOT / "Makefile").read_text() + (ROOT / "pyproject.toml").read_text()


def check_pip(cmd: list[str]) -> None:
    declared = declared_packages()
    extras = re.search(r"\[project\.optional-dependencies\](.*?)\n\[", declared, re.DOTALL)
    assert extras, "pyproject.toml has no optional dependencies"
    for arg in cmd[2:]:
        if arg.startswith("-"):
            continue
        if m := re.fullmatch(r"(?:\.|advgame)\[([\w,]+)\]", arg):
            for extra in m.group(1).split(","):
                assert re.search(rf"^{extra} = ", extras.group(1), re.MULTILINE), (
                    f"pyproject.toml has no extra {extra}"
                )
        else:
            assert arg in declared or re.split(r"[=<>]", arg)[0] in declared, (
                f"{arg} is not in Makefile/pyproject"
            )


def check_make(cmd: list[str]) -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in cmd[1:]:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), (
            f"the Makefile has no target {target}"
        )


def check_curl(cmd: list[str]) -> None:
    app = (ROOT / "advgame" / "serve" / "app.py").read_text()
    for url in (a for a in cmd if a.startswith("http")):
        route = "/" + url.split("://", 1)[1].split("/", 1)[1]
        assert f'"{route}"' in app, f"advgame serve has no route {route}"


def check_expensive(cmd: list[str]) -> None:
    head = cmd[0]
    if head == "advgame":
        check_advgame(cmd[1:])
    elif head in ("python", "python3"):
        check_python(cmd[1:])
    elif head in ("accelerate", "torchrun"):
        check_launcher(cmd)
    elif head == "make":
        check_make(cmd)
    elif head == "pip":
        check_pip(cmd)
    elif head == "curl":
        check_curl(cmd)
    else:
        rule = f"no rule for this README command, add one to {Path(__file__).name}"
        raise AssertionError(f"{rule}: {shlex.join(cmd)}")


def is_setup(cmd: list[str]) -> bool:
    return cmd[0] in SETUP_HEADS or cmd[:3] in (["python3", "-m", "venv"], ["python", "-m", "venv"])


def is_cheap(cmd: list[str]) -> bool:
    return cmd[0] in ("advgame", "python", "python3") and cmd[-1] in CHEAP_ENDINGS


# ---------------------------------------------------------------------------------------------- the tests


def test_readme_is_a_short_front_door():
    text = readme_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    head = "\n".join(text.splitlines()[:8])
    assert "make demo" in head and "make test" in head, "the README opens with the two commands"
    assert "Responsible use" in "\n".join(text.splitlines()[:40]), "the responsible-use box is near the top"


def test_readme_has_commands_of_each_kind():
    cmds = readme_shell_commands()
    assert len(cmds) >= 10
    assert any(is_cheap(c) for c in cmds)
    assert readme_console_commands()
    subcommands = {c[1] for c in cmds if c[0] == "advgame"}
    assert {"train", "eval", "redteam", "serve", "report"} <= subcommands


@pytest.mark.parametrize("cmd", [c for c in readme_shell_commands() if is_cheap(c)], ids=shlex.join)
def test_cheap_command_runs_as_written(cmd):
    proc = run(cmd)
    assert proc.returncode == 0, f"{shlex.join(cmd)} failed:\n{proc.stderr}"
    assert proc.stdout.strip()


@pytest.mark.parametrize(
    "cmd", [c for c in readme_shell_commands() if not is_cheap(c) and not is_setup(c)], ids=shlex.join
)
def test_expensive_command_is_consistent_with_the_code(cmd):
    check_expensive(cmd)


@pytest.mark.parametrize(
    "cmd,expected", readme_console_commands(), ids=lambda x: shlex.join(x)[:60] if isinstance(x, list) else ""
)
def test_console_output_is_what_the_command_prints(cmd, expected):
    proc = run(cmd)
    assert (proc.stdout + proc.stderr).strip() == expected.strip()


def test_python_example_runs_on_a_tiny_model():
    blocks = [body for lang, body in fenced_blocks(readme_text()) if lang == "python"]
    assert len(blocks) == 1
    code = blocks[0]
    assert 'path="smollm2"' in code and len(code.strip().splitlines()) <= 20
    namespace: dict = {}
    code = code.replace('path="smollm2"', 'path="tiny-llama"')
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    loss = namespace["loss"]
    assert loss.shape == (1,) and bool(loss.isfinite().all())
    assert namespace["defender"].ema.num_updates == 1


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    return {_slug(h) for h in re.findall(r"^#+ (.*)$", text, re.MULTILINE)}


@pytest.mark.parametrize(
    "page", ["README.md", "CONTRIBUTING.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))]
)
def test_local_links_and_anchors_exist(page):
    """Every relative link of the README, CONTRIBUTING.md and the docs pages reaches a file (and heading)."""
    source = ROOT / page if (ROOT / page).exists() else ROOT / "docs" / page
    text = re.sub(r"^```.*?^```", "", source.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        linked = source.parent / path if path else source
        assert linked.exists(), f"{page} links to {path}, which does not exist"
        if anchor:
            assert anchor in _headings(linked), f"{page} links to {target}: no such heading"


def test_licence_and_citation_match_the_package():
    import yaml

    import advgame

    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["version"] == advgame.__version__ and cff["license"] == "Apache-2.0"
    assert "2512.20806" in cff["preferred-citation"]["url"]


def test_the_rule_can_fail():
    """The checks reject a renamed preset, a removed flag, a missing make target and an unknown command."""
    with pytest.raises(AssertionError):
        check_advgame(["train", "configs/no_such_preset.yaml"])
    with pytest.raises(AssertionError):
        check_advgame(["eval", "--model", "smollm2", "--no-such-flag", "1"])
    with pytest.raises(AssertionError):
        check_make(["make", "no-such-target"])
    with pytest.raises(AssertionError):
        check_expensive(["wget", "http://example.com"])
    with pytest.raises(AssertionError):
        check_pip(["pip", "install", "-e", ".[no_such_extra]"])
