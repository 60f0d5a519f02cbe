# `make test` is the one command CI and developers run: it builds .venv when missing
# (or when pyproject.toml changed), then lints and runs every test.
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make demo` needs only the provider, Airflow and the emulator's video renderer, not the test tools.
DEMO_STAMP := $(VENV)/.demo-installed

.PHONY: test test-compat test-compat-floor test-deployment lint demo venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip install --python $(BIN)/python -e '.[test,deployment,video]' 'apache-airflow==$(AIRFLOW_VERSION)'
	@touch $@ $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip install --python $(BIN)/python -e '.[video]' 'apache-airflow==$(AIRFLOW_VERSION)'
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The unit and integration tiers on every supported Airflow minor, each in its own venv under .compat/
# (scripts/compat_matrix.py says how each is installed). CI runs the floor; `make test` is the newest.
test-compat: $(STAMP)
	$(BIN)/python scripts/compat_matrix.py

test-compat-floor: $(STAMP)
	$(BIN)/python scripts/compat_matrix.py --floor

# Only the tier that runs a real Airflow deployment (scheduler, triggerers, workers, Redis) on loopback.
test-deployment: $(STAMP)
	$(BIN)/pytest tests/deployment

# The README's first command: the daily text-to-video example end to end, on the local emulator
# (or on the real API when INFINITYBLUE_API_KEY is set).
demo: $(DEMO_STAMP)
	$(BIN)/python scripts/demo.py

clean:
	rm -rf $(VENV) .compat .pytest_cache .ruff_cache .demo .airflow-test
