# The two commands: `make run` (main job on the embedded data) and `make test`.
# Both create .venv on first use and install what they need (`make test` also Debian's
# chromium and chromium-driver for the browser tests); nothing else is required.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install bench bench-serve lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependencies change. torch is pinned (pyproject.toml) to the version
# whose CPU wheel these machines' pip finds locally.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/growth run

# Debian's Chromium and chromedriver, for the browser tests (tests/serving/test_browser.py).
CHROMEDRIVER := /usr/bin/chromedriver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMEDRIVER):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null

test: $(STAMP) $(CHROMEDRIVER)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_features.py

# Serving load test on the bundle `make run` wrote (about 4 minutes; loopback only).
bench-serve: $(STAMP)
	$(PY) benchmarks/bench_serve.py

lint: $(STAMP)
	$(VENV)/bin/ruff check features training serving growth tests benchmarks notebooks

clean:
	rm -rf artifacts reports quarantine .pytest_cache
