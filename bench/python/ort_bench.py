#!/usr/bin/env python3
"""ONNX Runtime beside `petseg bench model`: the ONNX file petseg exported from the very model it measured, timed
the way bench/python/model_bench.py times torchvision's (the first run apart, the warm-up, the median of the
repeats), with the case's input shape and the bench's thread count (intra_op_num_threads; one inter-op thread,
sequential execution, every graph optimization on). Prints one JSON line for the variant ({"variant": v, "seconds":
median seconds per run, "first_step_seconds", "warmup_seconds", "session_seconds": the session's creation,
"provider"} or {"variant": v, "error": "..."}), then {"done": true, "onnxruntime": version, ...}.
Exit code 3 without onnxruntime or numpy (the caller notes it on the ort rows and measures the rest).
"""
import argparse
import json
import sys
import time

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:  # the caller reports it on the row
    print(f"ort_bench.py: {e}", file=sys.stderr)
    sys.exit(3)

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def median_time(fn, warmup, repeats):
    """(median seconds, first run's seconds, seconds of all untimed warm-up runs), as model_bench.py's."""
    def timed():
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    first = timed()
    warm = first + sum(timed() for _ in range(warmup - 1))
    times = sorted(timed() for _ in range(repeats))
    return times[len(times) // 2], first, warm


def measure(args):
    provider = PROVIDERS[args.device]
    if provider not in ort.get_available_providers():
        raise RuntimeError(f"this onnxruntime has no {provider} (it has {', '.join(ort.get_available_providers())})")
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    start = time.perf_counter()
    session = ort.InferenceSession(args.onnx, options, providers=[provider])
    session_seconds = time.perf_counter() - start
    x = np.random.default_rng(0).standard_normal((args.batch, 3, args.size, args.size), dtype=np.float32)
    seconds, first, warm = median_time(lambda: session.run(["out"], {"input": x}), max(1, args.warmup), args.repeats)
    return {"variant": args.variant, "seconds": seconds, "first_step_seconds": first, "warmup_seconds": warm,
            "session_seconds": session_seconds, "provider": provider}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--onnx", required=True, help="the file petseg exported (input \"input\", output \"out\")")
    p.add_argument("--variant", default="ort", help="the row's name, echoed back")
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--device", choices=sorted(PROVIDERS), default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    try:
        line = measure(args)
    except Exception as e:  # reported on the row; the caller goes on with the rest
        error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
        line = {"variant": args.variant, "error": error}
        print(f"ort_bench.py: {args.variant} failed: {e!r}", file=sys.stderr)
    print(json.dumps(line), flush=True)
    print(json.dumps({"done": True, "onnxruntime": ort.__version__, "providers": ort.get_available_providers()}),
          flush=True)


if __name__ == "__main__":
    main()
