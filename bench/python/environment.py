#!/usr/bin/env python3
"""The machine and library versions for the results JSON of a bench script, with the keys of petseg's
src/bench/environment.cpp (describe_environment): prints one JSON object. libtorch_* are read from this
interpreter's torch: the pinned wheel whose libtorch petseg is built against (scripts/setup.sh, scripts/build.sh).
  environment.py --petseg build/apps/petseg --threads 2
"""
import argparse
import datetime
import json
import os
import subprocess
import sys


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def memory_gib():
    try:
        return round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1)
    except (ValueError, OSError):
        return 0


def gpu(torch):
    if torch is None or not torch.cuda.is_available():
        return None
    g = {"count": torch.cuda.device_count()}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True).stdout.splitlines()[0]
        g["name"], g["driver"], g["memory"] = (s.strip() for s in out.split(",")[:3])
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        pass
    return g


def cudnn_text(v):  # 91900 -> "9.19.0"
    return f"{v // 10000}.{v % 10000 // 100}.{v % 100}" if v else ""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--petseg", help="petseg's binary (its --version)")
    p.add_argument("--threads", type=int, default=0, help="the intra-op threads both sides ran with")
    args = p.parse_args()
    try:
        import torch
        import torchvision
    except ImportError:
        torch = torchvision = None
    petseg_version = None
    if args.petseg:
        try:
            out = subprocess.run([args.petseg, "--version"], capture_output=True, text=True, check=True).stdout
            petseg_version = out.split()[-1]
        except (OSError, subprocess.CalledProcessError, IndexError):
            pass
    version = torch.__version__.split("+")[0] if torch else None
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "gpu": gpu(torch),
        "petseg_version": petseg_version,
        "libtorch_version": version,
        "libtorch_cuda": (torch.version.cuda or "") if torch else None,
        "libtorch_cudnn": cudnn_text(torch.backends.cudnn.version() or 0) if torch else None,
        "intra_op_threads": args.threads,
        "python_executable": sys.executable,
        "python_torch_version": torch.__version__ if torch else None,
        "python_torchvision_version": torchvision.__version__ if torchvision else None,
        "python_torch_cuda": torch.version.cuda if torch else None,
    }
    print(json.dumps(env))


if __name__ == "__main__":
    main()
