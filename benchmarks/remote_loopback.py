"""Remote measurement over TVM RPC on loopback, beside the same TVM model measured locally.

Starts a TVM RPC tracker and one server on 127.0.0.1, compiles MediaPipe selfie (untuned, the
default Relax pipeline) for the device, and times it there with ``time_evaluator``; then times
the same model and target in edgeopt's local harness (a worker process, ``perf_counter`` around
``run``). On loopback both run on this CPU, so the two columns should agree up to the harness's
per-call Python overhead: a check that the remote path measures the model, not the transport.

Usage: ``.venv/bin/python benchmarks/remote_loopback.py [--runs 50] [--model mediapipe-selfie]``
"""

from __future__ import annotations

import argparse

from edgeopt import zoo
from edgeopt.bench import BenchSettings, Variant, compare
from edgeopt.bench.remote import measure_remote
from edgeopt.bench.rpc import loopback_device


def main() -> None:
    """Measure, then print one table row per path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mediapipe-selfie", choices=zoo.names())
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    path = zoo.pull(args.model)
    settings = BenchSettings(warmup=5, runs=args.runs, block=10)
    options = {"threads": args.threads} if args.threads else {}
    with loopback_device() as device:
        remote = measure_remote(path, device, options, settings)
    local = compare(
        [
            Variant(
                name="tvm local",
                model=str(path),
                backend="tvm",
                options={**options, "target": remote.target},
            )
        ],
        settings,
    )
    print(f"{args.model}, target {remote.target}, {args.runs} runs, untuned")
    print(f"{'path':<24}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'compile s':>11}")
    for r in (remote.comparison.results[0], local.results[0]):
        s = r.stats
        print(f"{r.name:<24}{s.p50:>10.2f}{s.p90:>10.2f}{s.p99:>10.2f}{r.compile_s:>11.1f}")
    errors = ", ".join(f"{k} {v:.2g}" for k, v in remote.max_abs_error.items())
    print(f"device outputs vs ONNX Runtime here, max abs error: {errors}")


if __name__ == "__main__":
    main()
