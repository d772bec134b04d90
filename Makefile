# The two commands: `make run` (main job on the embedded data) and `make test`.
# Both create .venv on first use and install what they need (`make test` also Debian's
# chromium and chromium-driver for the browser tests); nothing else is required.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install lock bench bench-serve lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependencies or their pins change. torch is pinned (pyproject.toml) to
# the version whose CPU wheel these machines' pip finds locally; constraints.txt pins every
# package to the version the recorded figures were measured with.
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Re-pin constraints.txt to what a fresh resolve of pyproject.toml's ranges gives today (a
# scratch venv, so .venv is untouched); then `make install` and re-measure BENCHMARKS.md.
# torch's pin drops the wheel's local label (+cpu), so PyPI's build satisfies it too.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .lock-venv/bin/pip freeze --exclude-editable \
	  | sed 's/^torch==\([^+]*\)+.*/torch==\1/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

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
