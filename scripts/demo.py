"""The demo behind `make demo`: benchmark a real model on this machine and write a report.

For now it measures ONNX Runtime settings side by side on the best real model available
here and writes the table, JSON and chart to demo-out/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgeopt.cli.main import app

OUT = Path("demo-out")


def main() -> int:
    """Run the demo; returns the exit code."""
    OUT.mkdir(exist_ok=True)
    model = sys.argv[1] if len(sys.argv) > 1 else None
    if model is None:
        print("demo: no model given", file=sys.stderr)
        return 1
    app(
        [
            "bench",
            model,
            "--threads",
            "1",
            "--threads",
            "2",
            "--seconds",
            "10",
            "--json",
            str(OUT / "bench.json"),
            "--chart",
            str(OUT / "bench.png"),
            "--markdown",
            str(OUT / "bench.md"),
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
