#!/usr/bin/env python3
"""Reference outputs for petseg's torchvision-parity tests.

Builds torchvision's segmentation model --model (default deeplabv3_<--backbone>) with weights=None,
weights_backbone=None, 21 classes and the aux head where the model has one, with a fixed seed; gives its BatchNorm
layers random affine parameters and running statistics and its convolution biases random values (so a wrong BN or
bias can't hide behind mean 0 / var 1 / zeros), saves the state_dict as torchvision's checkpoints are saved, runs it
in eval mode on a fixed input and saves input and outputs (as a state dict too, so petseg's own reader loads them).
With --train-seed it also runs the model once in train mode on the CPU right after torch.manual_seed(N) (petseg
seeds the same generator, so dropout draws the same masks) and saves those outputs and every buffer after the step
(BatchNorm's running statistics, updated with the layer's momentum) as after_train.<name>.
"""
import argparse
from collections import OrderedDict

import torch
import torchvision


def build(name):
    kwargs = dict(weights=None, weights_backbone=None, num_classes=21)
    if not name.startswith("lraspp"):  # LR-ASPP has no aux head (its builder refuses aux_loss)
        kwargs["aux_loss"] = True
    model = getattr(torchvision.models.segmentation, name)(**kwargs)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(-0.2, 0.2)
    return model


def outputs(y, prefix=""):
    out = OrderedDict()
    out[prefix + "out"] = y["out"].detach().cpu()
    if "aux" in y:
        out[prefix + "aux"] = y["aux"].detach().cpu()
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", help="torchvision's builder name, e.g. lraspp_mobilenet_v3_large")
    p.add_argument("--backbone", default="resnet101", choices=["resnet50", "resnet101"])
    p.add_argument("--weights-out", required=True)
    p.add_argument("--io-out", required=True)
    p.add_argument("--legacy", action="store_true", help="pre-1.6 (non-zip) torch.save format")
    p.add_argument("--height", type=int, default=67)
    p.add_argument("--width", type=int, default=83)
    p.add_argument("--device", default="cpu", help="where the model runs (cuda: TF32 off, as petseg's parity test)")
    p.add_argument("--train-seed", type=int, help="also one train-mode forward on the CPU after manual_seed(N)")
    args = p.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = build(args.model or f"deeplabv3_{args.backbone}")
    model.eval()
    torch.save(model.state_dict(), args.weights_out, _use_new_zipfile_serialization=not args.legacy)
    x = torch.randn(2, 3, args.height, args.width)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        io = OrderedDict(input=x)
        io.update(outputs(model.to(args.device)(x.to(args.device))))
    if args.train_seed is not None:
        model.cpu().train()
        torch.manual_seed(args.train_seed)
        with torch.no_grad():
            io.update(outputs(model(x), prefix="train_"))
        for name, b in model.named_buffers():
            io["after_train." + name] = b.detach().clone()
    torch.save(io, args.io_out)


if __name__ == "__main__":
    main()
