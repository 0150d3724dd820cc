#!/usr/bin/env python3
"""torchvision's DeepLabV3 in Python, timed the way `petseg bench model` times petseg's: eval forward and a
training step (forward, cross-entropy with ignore index 255, backward, SGD momentum 0.9 / wd 1e-4), with
optional bf16 autocast, channels_last and TorchScript. Prints one JSON line: the median seconds per variant.
Exit code 3 when torch/torchvision are not installed.
"""
import argparse
import json
import sys
import time

try:
    import torch
    import torchvision
except ImportError as e:
    print(f"model_bench.py: {e}", file=sys.stderr)
    sys.exit(3)


def median_time(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--backbone", default="resnet101")
    p.add_argument("--case", choices=["infer", "train"], required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--variants", required=True, help="comma list: fp32,bf16,cl,cl_bf16,torchscript")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    build = getattr(torchvision.models.segmentation, f"deeplabv3_{args.backbone}")
    results = {}
    for variant in args.variants.split(","):
        model = build(weights=None, weights_backbone=None, num_classes=3, aux_loss=False)
        x = torch.randn(args.batch, 3, args.size, args.size)
        channels_last = variant in ("cl", "cl_bf16")
        bf16 = variant in ("bf16", "cl_bf16")
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        if args.case == "infer":
            model.eval()
            if variant == "torchscript":
                model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model)))

            def step():
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    model(x)["out"]
        else:
            model.train()
            if variant == "torchscript":
                model = torch.jit.script(model)
            target = torch.randint(0, 3, (args.batch, args.size, args.size))
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

            def step():
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    out = model(x)["out"]
                loss = torch.nn.functional.cross_entropy(out.float(), target, ignore_index=255)
                loss.backward()
                opt.step()
        results[variant] = median_time(step, args.warmup, args.repeats)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
