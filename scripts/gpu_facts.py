#!/usr/bin/env python3
"""Stage 1 of the GPU check: the machine's facts and its two ceilings, in one short call of the machine's own PyTorch.

Writes one JSON object (to OUT_FILE and standard output): the GPU, its driver, torch / CUDA / cuDNN versions, and the
ceilings the check's model FLOP utilisation is measured against, each the median of several CUDA-event-timed runs on
random data (never zeros, which can run faster than real data):
  copy_gbps           a device-to-device copy of a large buffer, bytes read + written per second, in GB/s
  matmul_bf16_tflops  an N x N x N bf16 matrix product (2 N^3 FLOPs), in TFLOP/s
Without a CUDA device (the rehearsal) the facts are written and the ceilings left out.
  scripts/gpu_facts.py OUT_FILE [--matmul-size 8192] [--copy-mib 2048]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time


def nvidia_smi():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
        return out[0] if out else None
    except (OSError, subprocess.SubprocessError):
        return None


def median_ms(torch, fn, repeats):
    """Median milliseconds of fn() timed with CUDA events, after two untimed runs."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def ceilings(torch, args):
    n = args.matmul_size
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)
    ms = median_ms(torch, lambda: torch.matmul(a, b, out=c), 20)
    matmul = 2.0 * n ** 3 / (ms / 1e3) / 1e12
    del a, b, c
    elements = args.copy_mib * 2 ** 20 // 4
    src = torch.rand(elements, device="cuda")
    dst = torch.empty_like(src)
    ms = median_ms(torch, lambda: dst.copy_(src), 20)
    copy = 2.0 * elements * 4 / (ms / 1e3) / 1e9
    return {"matmul_bf16_tflops": round(matmul, 1), "matmul_size": n,
            "copy_gbps": round(copy, 1), "copy_mib": args.copy_mib}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--matmul-size", type=int, default=8192)
    p.add_argument("--copy-mib", type=int, default=2048)
    args = p.parse_args()
    t0 = time.time()
    facts = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host_cores": os.cpu_count(),
             "python": platform.python_version(), "nvidia_smi": nvidia_smi()}
    try:
        import torch
        facts.update({"torch": torch.__version__, "cuda": torch.version.cuda,
                      "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None})
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            facts.update({"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2 ** 30, 1),
                          "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count})
            facts.update(ceilings(torch, args))
        else:
            facts["gpu"] = None
            facts["note"] = "no CUDA device: ceilings not measured"
    except Exception as e:  # the facts gathered so far are still worth writing
        facts["error"] = f"{type(e).__name__}: {e}"
    facts["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(facts, indent=1)
    with open(args.out + ".tmp", "w") as f:
        f.write(text + "\n")
    os.replace(args.out + ".tmp", args.out)
    print(text)
    return 1 if "error" in facts else 0


if __name__ == "__main__":
    sys.exit(main())
