"""Walk the README as a new user would: paste every code block, in order, into one shell in this checkout.

Each fenced block runs as its kind says, unless an HTML comment on the line before it says otherwise:

- ``bash``: the lines run in one shell shared by the whole walk, so ``export``, ``cd`` and ``source`` carry
  on to later blocks, and any failing command stops the walk (``set -e``).
- ``console``: the same, for the lines after a ``$`` prompt (the rest is sample output).
- ``python``: saved to a file and run with the shell's ``python``, so it sees what the blocks above set up.
- ``<!-- readme-walk: isolated -->``: in a subshell, for settings that would change every later block
  (a proxy that does not exist here, say).
- ``<!-- readme-walk: fragment -->``: Python that continues an earlier snippet; only compiled.
- ``<!-- readme-walk: skip REASON -->``: not run, and the reason says why (it recurses, like ``make test``,
  or needs what this machine cannot have).
- ``<!-- readme-walk: covered-by PATH::TEST -->``: not run here, because that test runs the same command.

The walk's shell starts as a new user's would: ``HOME`` is an empty folder (so ``~/airflow`` is new),
no ``AIRFLOW_*`` or ``INFINITYBLUE_*`` variables and no virtualenv on ``PATH``; ``INFINITYBLUE_API_KEY`` is
an obviously fake key, and the emulator's documented port 8089 becomes a free one. Background jobs a block
starts (``... &``) are stopped when the walk ends.

    python -m scripts.readme_walk            # from the clone's root: exit 0 when every block did what it says
    python -m scripts.readme_walk --list     # only list the blocks and what the walk does with each
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deploy.processes import free_port

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCUMENTED_EMULATOR_PORT = "8089"
FAKE_API_KEY = "sk-readme-walk-fake-key-0000"
FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*readme-walk:\s*(?P<mode>[\w-]+)\s*(?P<detail>.*?)\s*-->\s*$")
MODES = {"run", "isolated", "fragment", "skip", "covered-by"}


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README and what the walk does with it."""

    line: int
    language: str
    code: str
    mode: str
    detail: str

    @property
    def commands(self) -> str:
        """The shell text of a ``bash`` or ``console`` block (a console block's ``$`` lines only)."""
        if self.language != "console":
            return self.code
        commands: list[str] = []
        continuing = False
        for line in self.code.splitlines():
            if line.startswith("$ "):
                commands.append(line[2:])
            elif continuing:
                commands.append(line)
            else:
                continue
            continuing = line.endswith("\\")
        return "\n".join(commands)


def read_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text``, with the mode its directive (or its language) gives it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        start = index
        index += 1
        while index < len(lines) and lines[index] != "```":
            index += 1
        language = opening.group(1)
        directive = DIRECTIVE.match(lines[start - 1]) if start else None
        mode, detail = (directive.group("mode"), directive.group("detail")) if directive else ("run", "")
        if mode not in MODES:
            raise ValueError(f"README line {start}: unknown readme-walk mode {mode!r} (one of {sorted(MODES)})")
        if mode in {"skip", "covered-by"} and not detail:
            raise ValueError(f"README line {start}: `readme-walk: {mode}` needs a reason or a test")
        if mode == "run" and language not in {"bash", "console", "python"}:
            raise ValueError(f"README line {start + 1}: a ```{language} block needs a readme-walk directive")
        blocks.append(Block(start + 1, language, "\n".join(lines[start + 1 : index]), mode, detail))
        index += 1
    return blocks


def walk_script(blocks: list[Block], python_files: Path, port: int) -> str:
    """One bash script that runs the blocks in order, announcing each, and stops background jobs at exit."""
    parts = [
        "set -euo pipefail",
        "trap 'jobs -p | xargs -r kill 2>/dev/null; wait 2>/dev/null || true' EXIT",
    ]
    for number, block in enumerate(blocks, 1):
        if block.mode in {"skip", "covered-by"}:
            continue
        header = f"README line {block.line} ({block.language}, {block.mode})"
        parts.append(f"echo {shlex.quote(f'=== block {number}: {header}')}")
        if block.language == "python":
            source = python_files / f"block_{number}.py"
            source.write_text(block.code.replace(DOCUMENTED_EMULATOR_PORT, str(port)) + "\n")
            action = "-m py_compile" if block.mode == "fragment" else ""
            parts.append(f"python {action} {shlex.quote(str(source))}")
            continue
        commands = block.commands.replace(DOCUMENTED_EMULATOR_PORT, str(port))
        parts.append(f"(\n{commands}\n)" if block.mode == "isolated" else commands)
    parts.append("echo '=== every block ran'")
    return "\n".join(parts) + "\n"


def new_user_environment(home: Path) -> dict[str, str]:
    venv = os.environ.get("VIRTUAL_ENV")
    path = [
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and not entry.startswith(str(REPO)) and not (venv and entry.startswith(venv))
    ]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "INFINITYBLUE_", "PYTHON", "VIRTUAL_ENV"))
    }
    return {**env, "HOME": str(home), "PATH": os.pathsep.join(path), "INFINITYBLUE_API_KEY": FAKE_API_KEY}


def check_coverage(blocks: list[Block]) -> list[str]:
    """Problems with ``covered-by`` directives: each must name a test that exists."""
    problems = []
    for block in blocks:
        if block.mode != "covered-by":
            continue
        path, _, test = block.detail.partition("::")
        file = REPO / path
        if not file.is_file() or f"def {test}(" not in file.read_text():
            problems.append(f"README line {block.line}: covered-by {block.detail}, which does not exist")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the blocks and their modes, run nothing")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole walk")
    args = parser.parse_args(argv)
    blocks = read_blocks(README.read_text())
    if args.list:
        for number, block in enumerate(blocks, 1):
            print(f"{number:3} line {block.line:4} {block.language:8} {block.mode:10} {block.detail}")
        return 0
    problems = check_coverage(blocks)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="readme-walk-") as scratch:
        home, python_files = Path(scratch, "home"), Path(scratch, "blocks")
        home.mkdir()
        python_files.mkdir()
        script = walk_script(blocks, python_files, free_port())
        completed = subprocess.run(
            ["bash", "-c", script], cwd=REPO, env=new_user_environment(home), timeout=args.timeout, check=False
        )
    return completed.returncode


if __name__ == "__main__":
    raise SystemExit(main())
