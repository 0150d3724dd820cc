#!/usr/bin/env python3
"""torchvision's DeepLabV3 in Python, timed the way `petseg bench model` times petseg's: an eval forward, or a
training step (forward, cross-entropy with ignore index 255, backward, SGD momentum 0.9 / wd 1e-4), on the CPU or a
GPU, for each variant asked for. A variant is
[torchscript_|compile_[freeze_]|folded_|fused_|ort_][cl_](fp32|tf32|bf16|fp16|bf16w|fp16w), the grammar of petseg's
src/bench/model_bench_plan.cpp (--parse-variants prints how this script reads a list, for the test that both agree):
  fp32   plain fp32 (on CUDA with TF32 off for matmuls and convolutions)
  tf32   fp32 with TF32 tensor-core math allowed (CUDA)
  bf16   torch.autocast with bfloat16 (TF32 allowed for what stays fp32); the weights stay fp32
  fp16   torch.autocast with float16; training steps go through torch.amp.GradScaler
  bf16w, fp16w  the model's weights and the input cast to that type, no autocast (inference only)
  cl     channels_last memory format for the model and the input
  torchscript  torch.jit.script (inference: frozen and optimize_for_inference'd)
  compile      torch.compile with the default (inductor) backend; its compilation happens in the warm-up steps
  freeze       with compile: torch._inductor.config.freezing = True (BatchNorm folded into the convolutions, weights
               constant-folded; inference only, under torch.no_grad)
  folded       petseg's BatchNorm-folded model: petseg only, refused here
  ort          ONNX Runtime on petseg's ONNX export: bench/python/ort_bench.py, refused here
Prints one JSON line per variant as soon as it is measured ({"variant": v, "seconds": median seconds per step,
"first_step_seconds": ..., "warmup_seconds": ...} or {"variant": v, "error": "..."}), so a caller that stops this
script keeps every variant already measured; then a last line {"done": true, "torch": ..., ...}.
Exit code 3 without torch/torchvision.
"""
import argparse
import json
import sys
import time

try:
    import torch
    import torchvision
except ImportError as e:  # no torch/torchvision in this interpreter: the caller reports it
    print(f"model_bench.py: {e}", file=sys.stderr)
    sys.exit(3)


MODES = ("torchscript", "compile", "folded", "fused", "ort")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "bf16w", "fp16w")


def parse_variant(name):
    """{"name": canonical name, "mode", "freeze", "cl", "precision", "inference_only"}, as petseg's parse_variant."""
    v = {"mode": "eager", "freeze": False, "cl": False, "precision": "fp32"}
    has_mode = has_precision = False
    for token in name.split("_"):
        if token in MODES:
            if has_mode:
                raise ValueError(f"variant {name!r} names two modes")
            v["mode"], has_mode = token, True
        elif token == "freeze":
            v["freeze"] = True
        elif token == "cl":
            v["cl"] = True
        elif token in PRECISIONS:
            if has_precision:
                raise ValueError(f"variant {name!r} names two precisions")
            v["precision"], has_precision = token, True
        else:
            raise ValueError(f"unknown variant token {token!r} in {name!r}")
    if v["freeze"] and v["mode"] != "compile":
        raise ValueError(f"variant {name!r}: freeze is a mode of torch.compile")
    if v["mode"] == "torchscript" and v["precision"] not in ("fp32", "tf32"):
        raise ValueError(f"variant {name!r}: TorchScript variants run in fp32 or tf32")
    if v["mode"] == "ort" and (v["cl"] or v["precision"] not in ("fp32", "fp16w")):
        raise ValueError(f"variant {name!r}: ONNX Runtime runs fp32 or fp16w, NCHW")
    tokens = [] if v["mode"] == "eager" else [v["mode"]]
    tokens += ["freeze"] if v["freeze"] else []
    tokens += ["cl"] if v["cl"] else []
    if v["precision"] != "fp32" or not tokens:
        tokens.append(v["precision"])
    v["name"] = "_".join(tokens)
    v["inference_only"] = v["freeze"] or v["mode"] in ("folded", "fused", "ort") or v["precision"].endswith("w")
    return v


def median_time(fn, warmup, repeats, cuda):
    """(median seconds, first step's seconds, seconds of all untimed warm-up steps)."""
    def timed():
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    # The first call apart: torch.compile compiles there, cuDNN's benchmark mode tunes there (its cost is reported,
    # not hidden in a warm-up).
    first = timed()
    warm = first + sum(timed() for _ in range(warmup - 1))
    times = sorted(timed() for _ in range(repeats))
    return times[len(times) // 2], first, warm


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="deeplabv3_resnet101")
    p.add_argument("--case", choices=["infer", "train"])
    p.add_argument("--batch", type=int)
    p.add_argument("--size", type=int)
    p.add_argument("--variants", help="comma list, e.g. fp32,bf16,cl_bf16,compile,compile_freeze_cl_bf16")
    p.add_argument("--parse-variants", metavar="LIST",
                   help="print each variant of LIST as this script reads it (a JSON line each) and exit")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cudnn-benchmark", type=int, choices=[0, 1], default=1,
                   help="torch.backends.cudnn.benchmark on CUDA (petseg passes its own setting)")
    args = p.parse_args()
    if args.parse_variants is not None:
        for name in args.parse_variants.split(","):
            try:
                print(json.dumps({"variant": name, **parse_variant(name)}))
            except ValueError as e:
                print(json.dumps({"variant": name, "error": str(e)}))
        return
    if args.case is None or args.batch is None or args.size is None or args.variants is None:
        p.error("--case, --batch, --size and --variants are required")

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    # petseg's setting on CUDA (it passes it): cuDNN picks its fastest algorithms for the fixed input size.
    torch.backends.cudnn.benchmark = cuda and bool(args.cudnn_benchmark)
    build = getattr(torchvision.models.segmentation, args.model)
    for variant in args.variants.split(","):
        try:
            seconds, first, warm = run_variant(args, variant, device, cuda, build)
            line = {"variant": variant, "seconds": seconds, "first_step_seconds": first, "warmup_seconds": warm}
        except Exception as e:  # one variant failing (torch.compile without a compiler, say) never loses the others
            error = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
            line = {"variant": variant, "error": error}
            print(f"model_bench.py: {variant} failed: {e!r}", file=sys.stderr)
        print(json.dumps(line), flush=True)
        if cuda:
            torch.cuda.empty_cache()
    print(json.dumps({"done": True, "torch": torch.__version__, "torchvision": torchvision.__version__,
                      "cudnn_benchmark": torch.backends.cudnn.benchmark}), flush=True)


def run_variant(args, variant, device, cuda, build):
    v = parse_variant(variant)
    mode, channels_last, precision = v["mode"], v["cl"], v["precision"]
    if mode in ("folded", "fused", "ort"):
        raise ValueError(f"{variant} is not a variant of this script ({mode}: "
                         + ("petseg only" if mode in ("folded", "fused") else "bench/python/ort_bench.py") + ")")
    if args.case == "train" and v["inference_only"]:
        raise ValueError(f"{variant} is for inference only")
    # TF32 as petseg sets it per variant: off for fp32, on for the rest (what stays fp32 under autocast).
    tf32 = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    cast_dtype = {"bf16w": torch.bfloat16, "fp16w": torch.float16}.get(precision)
    torch.manual_seed(0)
    model = build(weights=None, weights_backbone=None, num_classes=3, aux_loss=False).to(device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    if cast_dtype is not None:
        model = model.to(cast_dtype)
        x = x.to(cast_dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None)

    if args.case == "infer":
        model.eval()
        if mode == "torchscript":
            model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model)))
        elif mode == "compile":
            import torch._inductor.config as inductor_config

            # Freezing is read when the graph is compiled (the first call, under no_grad below); each variant sets it.
            inductor_config.freezing = v["freeze"]
            model = torch.compile(model)

        def step():
            with torch.no_grad(), autocast():
                model(x)["out"]
    else:
        model.train()
        target = torch.randint(0, 3, (args.batch, args.size, args.size), device=device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        run = model
        if mode == "torchscript":
            run = torch.jit.script(model)
        elif mode == "compile":
            run = torch.compile(model)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                out = run(x)["out"]
            loss = torch.nn.functional.cross_entropy(out.float(), target, ignore_index=255)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    try:
        return median_time(step, max(1, args.warmup), args.repeats, cuda)
    finally:
        if mode == "compile" and args.case == "infer":
            import torch._inductor.config as inductor_config

            inductor_config.freezing = False


if __name__ == "__main__":
    main()
