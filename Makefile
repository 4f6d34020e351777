# simclr-course: the README's commands. Every target creates .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BROWSER_STAMP := $(VENV)/.installed-browser
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
PROFILE ?= cpu
# PyTorch's OpenMP threads sleep instead of spinning while they wait: on a machine whose
# cores are busy with anything else, spinning made a 2-thread training step 4x slower than
# a 1-thread one (benchmarks/RESULTS.md). Read once, when torch loads; export to override.
OMP_WAIT_POLICY ?= PASSIVE
export OMP_WAIT_POLICY
# Jupyter refuses to run as root (containers, some cloud VMs) unless told it may.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: install test lint unit notebooks lab course bench colab-check browser-check clean

# (Re)install the project into .venv whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,lab]"
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

unit: $(STAMP)
	$(PY) -m pytest --durations=10

# One OpenMP thread: the ci profile's tensors are tiny, and on shared 2-core machines
# spinning threads made small ops up to 100x slower.
notebooks: $(STAMP)
ifneq ($(NOTEBOOKS),)
	SIMCLR_PROFILE=ci OMP_NUM_THREADS=1 $(PY) -m pytest --nbmake --durations=10 $(NOTEBOOKS)
else
	@echo "no notebooks yet"
endif

# Everything CI runs: lint, unit tests, notebooks in the `ci` profile.
test: lint unit notebooks

# Open the course in JupyterLab.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) notebooks/

# Execute the whole course (profile $(PROFILE), default cpu) into build/course/ (notebooks + HTML).
course: $(STAMP)
ifneq ($(NOTEBOOKS),)
	@mkdir -p build/course
	SIMCLR_PROFILE=$(PROFILE) $(VENV)/bin/jupyter nbconvert --to notebook --execute \
		--ExecutePreprocessor.timeout=1800 --output-dir build/course $(NOTEBOOKS)
	$(VENV)/bin/jupyter nbconvert --to html --output-dir build/course build/course/*.ipynb
	@echo "executed course: build/course/"
else
	@echo "no notebooks yet"
endif

bench: $(STAMP)
	$(PY) benchmarks/bench_augment.py
	$(PY) benchmarks/bench_explorers.py

# The notebooks' set-up cell, run in a Colab-like environment (versions: tools/colab_runtime.txt),
# changes no preinstalled package, and the explorers work under ipywidgets 7. Needs no .venv;
# builds build/colab-venv (about 2 min) and reuses it while it is exactly as built.
colab-check:
	$(PYTHON) tools/colab_check.py

# Playwright (the browser extra) on top of the project's .venv.
$(BROWSER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,lab,browser]"
	@touch $(BROWSER_STAMP)

# The explorers in a real JupyterLab and headless Chromium (the system's, e.g.
# `apt-get install chromium`): screenshots and report.json in build/browser-check/.
browser-check: $(BROWSER_STAMP)
	$(PY) tools/browser_check.py

clean:
	rm -rf build .pytest_cache .ruff_cache
