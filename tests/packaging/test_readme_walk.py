"""The README, pasted block by block into a new user's shell, works (scripts/readme_walk.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.readme_walk import README, check_coverage, read_blocks

REPO = Path(__file__).parents[2]


def test_every_block_is_run_or_says_why_not() -> None:
    blocks = read_blocks(README.read_text())
    assert len(blocks) >= 15
    assert check_coverage(blocks) == []
    not_run = [block for block in blocks if block.mode in {"skip", "covered-by"}]
    assert all(block.detail for block in not_run)
    assert len(not_run) <= 4, [block.line for block in not_run]  # the walk is the rule, not the exception


def test_a_block_without_a_known_directive_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown readme-walk mode"):
        read_blocks("<!-- readme-walk: maybe -->\n```bash\ntrue\n```\n")
    with pytest.raises(ValueError, match="needs a readme-walk directive"):
        read_blocks("```yaml\nkey: value\n```\n")


@pytest.mark.timeout(900)
def test_the_readme_walks_from_top_to_bottom() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scripts.readme_walk"], cwd=REPO, capture_output=True, text=True, timeout=880
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-4000:]
    assert "=== every block ran" in result.stdout
