"""``python -m airflow_provider_infinityblue.emulator --port 8089``: run the emulator."""

from __future__ import annotations

from airflow_provider_infinityblue.emulator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
