"""`make test-compat`: run the unit and integration tiers on every supported Airflow minor.

Each Airflow gets its own virtualenv in ``.compat/`` (built by uv, reused while ``pyproject.toml`` is
unchanged), with the provider installed from this checkout. An older Airflow is installed with the rest
of its world as it was when it came out (``uv --exclude-newer`` the day after its release), which is
what its constraints file gives its users; only the provider's own requirements that are newer than that
are let through. The newest Airflow resolves like ``make test`` does. Tests that only apply to some
Airflow versions carry ``@pytest.mark.airflow(...)`` and are left out elsewhere (the summary counts them).

    python scripts/compat_matrix.py               # every Airflow in MATRIX
    python scripts/compat_matrix.py --floor       # only the oldest (CI runs it beside `make test`, the newest)
    python scripts/compat_matrix.py --airflow 3.1.8
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMPAT_DIR = REPO / ".compat"
TIERS = ["tests/unit", "tests/integration", "airflow_provider_infinityblue"]


@dataclass(frozen=True)
class AirflowRelease:
    version: str
    # The day after the release: packages uploaded later are not considered (None: resolve as of today).
    world_as_of: str | None


# The floor first, then the newest patch of each minor. The floor is pyproject.toml's `apache-airflow>=`, the
# newest is the Makefile's AIRFLOW_VERSION, and the README's support table lists exactly these (a unit test
# checks all three agree).
MATRIX = [
    AirflowRelease("3.0.6", "2025-08-30"),
    AirflowRelease("3.1.8", "2026-03-12"),
    AirflowRelease("3.2.2", "2026-05-30"),
    AirflowRelease("3.3.2", None),
]
# The provider's own requirements that are newer than an old Airflow's world (pyproject.toml says why).
NEWER_THAN_THE_WORLD = ["apache-airflow-providers-common-compat"]


def venv_for(release: AirflowRelease) -> Path:
    return COMPAT_DIR / f"airflow-{release.version}"


def install(release: AirflowRelease, uv: str) -> Path:
    """The release's virtualenv, (re)built when pyproject.toml changed since it was made."""
    venv = venv_for(release)
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    fingerprint = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == fingerprint and python.is_file():
        return python
    if not python.is_file():
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    command = [uv, "pip", "install", "--quiet", "--python", str(python)]
    if release.world_as_of:
        command += ["--exclude-newer", release.world_as_of]
        command += [f"--exclude-newer-package={name}=2100-01-01" for name in NEWER_THAN_THE_WORLD]
    command += ["-e", f"{REPO}[test]", f"apache-airflow=={release.version}"]
    started = time.monotonic()
    subprocess.run(command, check=True)
    print(f"  installed in {time.monotonic() - started:.0f} s", flush=True)
    stamp.write_text(fingerprint)
    return python


def run_tiers(release: AirflowRelease, python: Path, extra_pytest_args: list[str]) -> tuple[int, str]:
    """Run the tiers; return pytest's exit code and its closing line."""
    log = venv_for(release) / "pytest.log"
    # No inherited Airflow settings: the root conftest gives each run its own throwaway AIRFLOW_HOME.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    command = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q", *TIERS, *extra_pytest_args]
    with log.open("w") as out:
        code = subprocess.run(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    lines = log.read_text(errors="replace").splitlines()
    summary = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed|error)", line)), "no summary")
    if code != 0:
        print("\n".join(lines[-60:]), flush=True)
    print(f"  full log: {log.relative_to(REPO)}", flush=True)
    return code, summary.strip("= ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airflow", action="append", help="only this Airflow version (repeatable)")
    parser.add_argument("--floor", action="store_true", help="only the oldest supported Airflow")
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = parser.parse_args(argv)
    releases = MATRIX
    if args.floor:
        releases = [MATRIX[0]]
    if args.airflow:
        unknown = set(args.airflow) - {release.version for release in MATRIX}
        if unknown:
            parser.error(f"not in the matrix: {', '.join(sorted(unknown))}")
        releases = [release for release in MATRIX if release.version in args.airflow]
    uv = str(Path(sys.executable).parent / "uv")
    results: list[tuple[AirflowRelease, int, str, float]] = []
    for release in releases:
        world = f"its world as of {release.world_as_of}" if release.world_as_of else "today's world"
        print(f"Airflow {release.version} ({world}):", flush=True)
        started = time.monotonic()
        python = install(release, uv)
        code, summary = run_tiers(release, python, args.pytest_args)
        results.append((release, code, summary, time.monotonic() - started))
        print(f"  {'ok' if code == 0 else 'FAILED'}: {summary}", flush=True)
    print("\nAirflow | result | time")
    for release, code, summary, seconds in results:
        print(f"{release.version} | {'ok' if code == 0 else 'FAILED'}: {summary} | {seconds / 60:.1f} min")
    return 0 if all(code == 0 for _, code, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
