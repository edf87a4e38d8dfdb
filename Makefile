# The two commands the README promises: `make serve` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: serve test chromium lint typecheck install-serve install-dev clean container-test

# Every Python folder is linted and format-checked; the two halves, their contract and the test harness
# are type-checked (mypy, configured in pyproject.toml).
PYTHON_DIRS := app training tests bench stress petseg_contract petseg_harness
TYPED_DIRS := app training petseg_contract petseg_harness

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Serving needs only the light half; the stamp is rebuilt whenever pyproject.toml changes.
$(VENV)/.serve-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e ".[cpu,serve]"
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -e ".[cpu,serve,train,test]"
	touch $@ $(VENV)/.serve-installed

install-serve: $(VENV)/.serve-installed
install-dev: $(VENV)/.dev-installed

serve: install-serve
	$(VENV)/bin/petseg serve

# The upload page's browser test needs Debian's Chromium; as root (CI) it is installed when missing.
chromium:
	@(command -v chromium && command -v chromedriver) >/dev/null || [ "$$(id -u)" != 0 ] || (apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends chromium chromium-driver)

# The quality gate CI runs (.ci/run): lint, format check, type check, then every test.
test: install-dev chromium lint typecheck
	$(PY) -m pytest

lint: install-dev
	$(PY) -m ruff check $(PYTHON_DIRS)
	$(PY) -m ruff format --check $(PYTHON_DIRS)

typecheck: install-dev
	$(PY) -m mypy $(TYPED_DIRS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

# Real-engine check of Dockerfile + docker-compose.yml (root, Debian; installs docker.io, starts and stops
# dockerd, builds a local stand-in base image). Not part of `make test`/CI: heavy and needs apt + a daemon.
container-test:
	bash scripts/container-test.sh

# Evidence (README): service vs raw SavedModel vs a naive server; hostile inputs, 60 s load, SIGTERM.
.PHONY: bench stress
bench: install-dev
	$(PY) -m bench

stress: install-dev
	$(PY) -m stress
