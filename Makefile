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

typecheck: setup
	$(VENV)/mypy src

# GStreamer's libraries and OpenCV's bundled ones crash other native modules (torch,
# matplotlib's fonts) imported after them in one process, so the GStreamer tests run apart.
unit: setup
	$(VENV)/python -m pytest --ignore=tests/apps/test_gst.py
	$(VENV)/python -m pytest tests/apps/test_gst.py

test: lint typecheck unit

clean:
	rm -rf demo-out .pytest_cache .mypy_cache .ruff_cache
