#!/usr/bin/env python3
"""torchvision against onnxruntime for petseg's ONNX export tests.

Builds torchvision's segmentation model --model (weights=None, the aux head with --aux), loads --weights (a state dict
petseg wrote, strictly: every key torchvision's model has), and for each --case FILE:SHAPES runs the ONNX file in
onnxruntime (CPU provider) and the model in eval mode on the same random inputs (seeded), one per shape N,C,H,W.
Prints one JSON object per line and output: file, shape, output name, its shape, the largest absolute difference and
the reference's largest magnitude. Exits 3 when onnxruntime is missing (the test then skips, saying so).
"""
import argparse
import json
import sys

import torch
import torchvision


def parse_case(text):
    path, shapes = text.rsplit(":", 1)
    return path, [tuple(int(d) for d in s.split(",")) for s in shapes.split(";")]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--num-classes", type=int, default=21)
    p.add_argument("--aux", action="store_true")
    p.add_argument("--case", action="append", default=[], help="FILE:N,C,H,W;N,C,H,W")
    args = p.parse_args()
    try:
        import onnxruntime
    except ImportError:
        print("no onnxruntime in this Python", file=sys.stderr)
        sys.exit(3)

    torch.manual_seed(0)
    torch.set_num_threads(2)
    kwargs = dict(weights=None, weights_backbone=None, num_classes=args.num_classes)
    if args.aux:
        kwargs["aux_loss"] = True
    model = getattr(torchvision.models.segmentation, args.model)(**kwargs)
    model.load_state_dict(torch.load(args.weights, weights_only=True), strict=True)
    model.eval()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    for case in args.case:
        path, shapes = parse_case(case)
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        for shape in shapes:
            x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
            with torch.no_grad():
                ref = model(x)
            got = dict(zip(names, session.run(names, {"input": x.numpy()})))
            for name in names:
                y = torch.from_numpy(got[name])
                expected = ref[name]
                same_shape = tuple(y.shape) == tuple(expected.shape)
                print(json.dumps({
                    "file": path, "shape": list(shape), "output": name, "out_shape": list(y.shape),
                    "max_abs": float((y - expected).abs().max()) if same_shape else 1e30,
                    "scale": float(expected.abs().max()),
                }))


if __name__ == "__main__":
    main()
