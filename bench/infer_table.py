#!/usr/bin/env python3
"""The inference table of docs/performance.md, from bench/infer_models.sh's results (bench/results/infer/*.json, the
"cases" of `petseg bench model --json`): per model and case, each side's best variant and seconds (petseg; Python's
best without torch.compile, eager or TorchScript, and its best torch.compile variant; ONNX Runtime on petseg's
export), petseg / Python's best (compile included) and petseg/ORT (> 1: petseg faster), and the stamp.
  bench/infer_table.py [DIR]
"""
import glob
import json
import os
import sys

ORDER = ["deeplabv3_resnet101", "deeplabv3_resnet50", "fcn_resnet101", "fcn_resnet50",
         "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]


def cell(best):
    return f"{best['variant']} {best['seconds']:.3f} s" if best else "–"


def python_best(doc, case_name, compiled):
    """Python's fastest row of the case among its torch.compile variants (compiled) or its eager ones."""
    rows = [r for r in doc["rows"] if r["case"] == case_name and r.get("python_seconds") is not None
            and r["variant"].startswith("compile") == compiled]
    best = min(rows, key=lambda r: r["python_seconds"], default=None)
    return {"variant": best["variant"], "seconds": best["python_seconds"]} if best else None


def ratio(case, key):
    return f"{case[key]:.2f}×" if key in case else "–"


def main(folder):
    docs = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        with open(path) as f:
            doc = json.load(f)
        if doc.get("benchmark") == "model" and "cases" in doc:
            docs[doc["model"]] = doc
    print("| model | case | petseg best | Python best, no compile | Python compile best | ONNX Runtime "
          "| petseg / Python best | petseg / ORT |")
    print("|---|---|---|---|---|---|---:|---:|")
    ratios = []
    for model in sorted(docs, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER)):
        doc = docs[model]
        for case in doc["cases"]:
            if "petseg_over_python" in case:
                ratios.append(case["petseg_over_python"])
            print(f"| `{model}` | {case['case']} | {cell(case.get('petseg_best'))} | "
                  f"{cell(python_best(doc, case['case'], False))} | {cell(python_best(doc, case['case'], True))} | "
                  f"{cell(case.get('ort_best'))} | "
                  f"{ratio(case, 'petseg_over_python')} | {ratio(case, 'petseg_over_ort')} |")
        incomplete = [r for r in doc["rows"] if "note" in r]
        for r in incomplete:
            print(f"<!-- {model} {r['case']} {r['variant']}: {r['note']} -->")
    if ratios:
        met = sum(r >= 1.0 for r in ratios)
        print(f"\npetseg best / Python best: {min(ratios):.2f}–{max(ratios):.2f}× "
              f"({met} of {len(ratios)} cases >= 1.0×)")
    if docs:
        doc = next(iter(docs.values()))
        env = doc["environment"]
        ort = (doc.get("onnxruntime") or {}).get("version")
        print(f"\n{env.get('cpu_model', '?')}, {env.get('cores', '?')} cores, {doc.get('threads', '?')} threads; "
              f"libtorch {env.get('libtorch_version', '?')}, Python torch {env.get('python_torch_version', '?')}, "
              f"torchvision {env.get('python_torchvision_version', '?')}, onnxruntime {ort or '?'}; "
              f"{env.get('date', '?')}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/infer")
