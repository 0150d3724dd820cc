#!/usr/bin/env python3
"""The README's measured model table, from bench/models.sh's results (bench/results/models/*.json): per model and
case, petseg and Python in eager fp32, and each side's best configuration (the fastest of its variants)."""
import glob
import json
import os
import sys

ORDER = ["deeplabv3_resnet101", "deeplabv3_resnet50", "fcn_resnet101", "fcn_resnet50",
         "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]


def main(folder):
    docs = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        with open(path) as f:
            doc = json.load(f)
        docs[doc["model"]] = doc
    ratios = {"train eager": [], "train best": [], "infer eager": [], "infer best": []}
    print("| model | case | GFLOP/image | eager fp32: petseg / Python s | petseg/py | best: petseg | best: Python | petseg/py |")
    print("|---|---|---|---|---|---|---|---|")
    for model in sorted(docs, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER)):
        rows = docs[model]["rows"]
        for case in dict.fromkeys(r["case"] for r in rows):
            rs = [r for r in rows if r["case"] == case and r.get("optimizer", "fused") == "fused"]
            eager = next(r for r in rs if r["variant"] == "fp32")
            petseg = min((r for r in rs if "petseg_seconds" in r), key=lambda r: r["petseg_seconds"])
            python = min((r for r in rs if "python_seconds" in r), key=lambda r: r["python_seconds"])
            kind = "train" if eager["kind"] == "train" else "infer"
            ratios[kind + " eager"].append(eager["python_seconds"] / eager["petseg_seconds"])
            ratios[kind + " best"].append(python["python_seconds"] / petseg["petseg_seconds"])
            print(f"| `{model}` | {case} | {eager['flops_per_image'] / 1e9:.1f} | "
                  f"{eager['petseg_seconds']:.3f} / {eager['python_seconds']:.3f} | "
                  f"{eager['python_seconds'] / eager['petseg_seconds']:.2f}× | "
                  f"{petseg['variant']} {petseg['petseg_seconds']:.3f} s | "
                  f"{python['variant']} {python['python_seconds']:.3f} s | "
                  f"{python['python_seconds'] / petseg['petseg_seconds']:.2f}× |")
    print()
    for key, values in ratios.items():
        if values:
            print(f"{key}: petseg/Python {min(values):.2f}–{max(values):.2f}×")
    env = next(iter(docs.values()))["environment"] if docs else {}
    print(f"\n{env.get('cpu_model', '?')}, {env.get('cores', '?')} cores, {env.get('intra_op_threads', '?')} threads; "
          f"libtorch {env.get('libtorch_version', '?')}, Python torch {env.get('python_torch_version', '?')}, "
          f"torchvision {env.get('python_torchvision_version', '?')}; {env.get('date', '?')}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/models")
