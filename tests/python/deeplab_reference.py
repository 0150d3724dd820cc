#!/usr/bin/env python3
"""Reference outputs for petseg's torchvision-parity tests.

Builds torchvision's deeplabv3_<backbone>(weights=None, weights_backbone=None, aux_loss=True) with a fixed seed,
gives its BatchNorm layers random running statistics (so a wrong BN can't hide behind mean 0 / var 1), saves the
state_dict as torchvision's checkpoints are saved, runs it in eval mode on a fixed input and saves input and
outputs (as a state dict too, so petseg's own reader loads them).
"""
import argparse
from collections import OrderedDict

import torch
import torchvision


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--backbone", default="resnet101", choices=["resnet50", "resnet101"])
    p.add_argument("--weights-out", required=True)
    p.add_argument("--io-out", required=True)
    p.add_argument("--legacy", action="store_true", help="pre-1.6 (non-zip) torch.save format")
    p.add_argument("--height", type=int, default=67)
    p.add_argument("--width", type=int, default=83)
    p.add_argument("--device", default="cpu", help="where the model runs (cuda: TF32 off, as petseg's parity test)")
    args = p.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(2)
    build = getattr(torchvision.models.segmentation, f"deeplabv3_{args.backbone}")
    model = build(weights=None, weights_backbone=None, aux_loss=True)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.eval()
    torch.save(model.state_dict(), args.weights_out, _use_new_zipfile_serialization=not args.legacy)
    x = torch.randn(2, 3, args.height, args.width)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        y = model.to(args.device)(x.to(args.device))
    torch.save(OrderedDict(input=x, out=y["out"].cpu(), aux=y["aux"].cpu()), args.io_out)


if __name__ == "__main__":
    main()
