#!/usr/bin/env python3
"""The GPU check's summary, rebuilt from what is on disk after every stage (scripts/gpu_check.sh): the machine, each
stage's verdict, the headline table (petseg vs Python, train step at the check's size, MFU), the targets, the ladder,
the tests, and where the files are. Reads only finished files, so a check stopped at any moment still summarises
everything it measured. Standard library only.
  scripts/gpu_summary.py OUT_DIR STAGES_TSV
"""
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(v, digits=3, suffix=""):
    return "-" if v is None else f"{v:.{digits}f}{suffix}"


def machine(facts):
    if not facts:
        return ["machine: facts.json missing (stage 1 did not finish)"]
    lines = [f"GPU: {facts.get('gpu') or 'none'}; nvidia-smi: {facts.get('nvidia_smi') or '-'}",
             f"torch {facts.get('torch')}, CUDA {facts.get('cuda')}, cuDNN {facts.get('cudnn')}, Python "
             f"{facts.get('python')}, {facts.get('host_cores')} cores, {facts.get('date')}"]
    if "matmul_bf16_tflops" in facts:
        lines.append(f"ceilings measured: {facts['matmul_size']}^3 bf16 matmul {facts['matmul_bf16_tflops']} TFLOP/s, "
                     f"device copy {facts['copy_gbps']} GB/s (read + write)")
    return lines


def stages(path):
    lines = ["stages (budget order):"]
    try:
        with open(path) as f:
            for row in f:
                name, status, seconds, box, note = (row.rstrip("\n").split("\t") + [""] * 5)[:5]
                lines.append(f"  {name:<28} {status:<9} {seconds:>5} s of {box:>4} s box  {note}".rstrip())
    except OSError:
        lines.append("  (no stage finished)")
    return lines


def rows_of(out):
    """Every bench model row of the check, by (case, variant), the headline's first."""
    rows, docs = {}, []
    for name in ("model.json", "compile.json", "fp16.json"):
        doc = load(os.path.join(out, name))
        if not doc:
            continue
        docs.append((name, doc))
        for r in doc.get("rows", []):
            if r.get("optimizer", "fused") != "fused":
                continue
            rows.setdefault((r["case"], r["variant"]), r)
    return rows, docs


def headline(out):
    rows, docs = rows_of(out)
    if not docs:
        return ["headline: model.json missing (stage 2 did not start)"], rows
    lines = []
    for name, doc in docs:
        state = "complete" if doc.get("complete") else "STOPPED before the end: rows without figures were not reached"
        lines.append(f"{name}: {doc.get('model')} on {doc.get('device')}, median of {doc.get('repeats')} steps after "
                     f"{doc.get('warmup')} warm-up, cuDNN benchmark {'on' if doc.get('cudnn_benchmark') else 'off'} "
                     f"(both sides) - {state}")
    lines.append(f"  {'case':<17} {'variant':<16} {'petseg s':>9} {'img/s':>7} {'Python s':>9} {'img/s':>7} "
                 f"{'petseg/py':>9} {'MFU sheet':>10} {'MFU meas.':>10}  note")
    for (case, variant), r in rows.items():
        ps, ys = r.get("petseg_seconds"), r.get("python_seconds")
        mfu = r.get("petseg_mfu", r.get("python_mfu") if ps is None else None)
        mfu_m = r.get("petseg_mfu_measured", r.get("python_mfu_measured") if ps is None else None)
        lines.append(f"  {case:<17} {variant:<16} {fmt(ps):>9} {fmt(r.get('petseg_images_per_s'), 1):>7} "
                     f"{fmt(ys):>9} {fmt(r.get('python_images_per_s'), 1):>7} "
                     f"{fmt(r.get('petseg_over_python'), 2, 'x'):>9} {fmt(mfu and 100 * mfu, 1, '%'):>10} "
                     f"{fmt(mfu_m and 100 * mfu_m, 1, '%'):>10}  {r.get('note', '')}".rstrip())
    return lines, rows


def targets(rows):
    lines = ["targets (train step):"]
    eager = [(r["python_seconds"] / r["petseg_seconds"], v) for (c, v), r in rows.items()
             if "petseg_seconds" in r and "python_seconds" in r and not v.startswith(("compile", "torchscript"))]
    if eager:
        ratio, v = min(eager)
        lines.append(f"  petseg eager >= 1.0x Python eager (lowest over variants): {ratio:.2f}x ({v}) -> "
                     f"{'met' if ratio >= 1.0 else 'NOT met'}")
    ours = [(r["petseg_seconds"], v) for (c, v), r in rows.items() if "petseg_seconds" in r]
    theirs = [(r["python_seconds"], v) for (c, v), r in rows.items() if "python_seconds" in r]
    if ours and theirs:
        (ps, pv), (ys, yv) = min(ours), min(theirs)
        compiled = any(v.startswith("compile") and "python_seconds" in r for (c, v), r in rows.items())
        lines.append(f"  petseg best >= 1.1x Python best ({'torch.compile included' if compiled else 'torch.compile NOT measured'}): "
                     f"petseg {pv} {ps:.4f} s vs Python {yv} {ys:.4f} s = {ys / ps:.2f}x -> "
                     f"{'met' if ys / ps >= 1.1 else 'NOT met'}")
    if len(lines) == 1:
        lines.append("  (not enough rows measured)")
    return lines


def ladder(out):
    doc = load(os.path.join(out, "ladder.json"))
    if not doc:
        return []
    lines = [f"ladder: {doc.get('settings')}",
             f"  {'rung':<44} {'petseg img/s':>12} {'Python img/s':>12} {'petseg/py':>9}  data wait petseg/py"]
    for r in doc.get("rungs", []):
        p, y = r.get("petseg") or {}, r.get("python") or {}
        ratio = r.get("petseg_over_python")
        wait = f"{100 * p['data_share']:.1f}% / " if p else "- / "
        wait += f"{100 * y['data_share']:.1f}%" if y else "-"
        lines.append(f"  {r['rung'][:44]:<44} {fmt(p.get('images_per_s'), 2):>12} {fmt(y.get('images_per_s'), 2):>12} "
                     f"{fmt(ratio, 2, 'x'):>9}  {wait}  {r.get('note', '')}".rstrip())
    return lines


def main():
    out, stages_tsv = sys.argv[1], sys.argv[2]
    facts = load(os.path.join(out, "facts.json"))
    parts = [["== petseg GPU check: summary"] + machine(facts), stages(stages_tsv)]
    table, rows = headline(out)
    parts += [table, targets(rows), ladder(out)]
    try:
        with open(os.path.join(out, "ctest.txt")) as f:
            parts.append(["tests:"] + ["  " + l.rstrip() for l in f if l.strip()][-30:])
    except OSError:
        pass
    files = sorted(f for f in os.listdir(out) if not f.endswith(".tmp"))
    parts.append([f"files in OUT: {', '.join(files)} (logs.tar.gz: every stage's log, model.txt, ladder.txt/.svg)"])
    print("\n\n".join("\n".join(p) for p in parts if p))


if __name__ == "__main__":
    main()
