# The two commands of the README: `make demo` and `make test`. Both set up what they need.
.PHONY: setup demo test lint typecheck unit clean

VENV := .venv/bin

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/python scripts/demo.py

lint: setup
	$(VENV)/ruff check src tests benchmarks scripts
	$(VENV)/ruff format --check src tests benchmarks scripts
	$(VENV)/python -m pytest -q -p no:cacheprovider tests/unit/test_layers.py  # layers contract

typecheck: setup
	$(VENV)/mypy src

# GStreamer's libraries and OpenCV's bundled ones crash other native modules (torch,
# matplotlib's fonts) imported after them in one process, so the GStreamer tests run apart.
# Long fuzz sweeps carry the `slow` marker: `make test` runs a quick sample of each, CI
# (`make test SLOW=1`) runs them all.
MARKERS := $(if $(SLOW),,-m "not slow")
unit: setup
	$(VENV)/python -m pytest $(MARKERS) --ignore=tests/apps/test_gst.py
	$(VENV)/python -m pytest $(MARKERS) tests/apps/test_gst.py

test: lint typecheck unit

clean:
	rm -rf demo-out .pytest_cache .mypy_cache .ruff_cache
