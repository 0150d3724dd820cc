"""The reference values and gradients of petseg's segmentation losses (src/train/loss.h), for
tests/train/test_loss.cpp:
  loss_reference.py IN.pth OUT.pth
IN (written by the test) holds, for each case K: K.logits [N,C,H,W] float32, K.target [N,H,W] int64,
K.ignore_index (0-d int64), and optionally K.weight [C] float32.
OUT gets, for each case K and each kind (ce, dice, focal, ce+dice): K.KIND.value (0-d) and K.KIND.grad (d value /
d logits), from torch.nn.CrossEntropyLoss(weight, ignore_index) and segmentation_models_pytorch's DiceLoss and
FocalLoss (mode="multiclass", ignore_index, every other argument at its default); ce+dice is their sum, the weights
on the cross-entropy only. Everything in float32 on the CPU."""
import sys
from collections import OrderedDict

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.losses import DiceLoss, FocalLoss

SMP_VERSION = "0.6.0"  # scripts/pyenv.sh pins it; another version is another reference


def losses(weight, ignore_index):
    ce = torch.nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index)
    dice = DiceLoss(mode="multiclass", ignore_index=ignore_index)
    focal = FocalLoss(mode="multiclass", ignore_index=ignore_index)
    return {"ce": ce, "dice": dice, "focal": focal, "ce+dice": lambda x, t: ce(x, t) + dice(x, t)}


def main(src, dst):
    if smp.__version__ != SMP_VERSION:
        sys.exit(f"segmentation_models_pytorch {smp.__version__}, not the pinned {SMP_VERSION}")
    cases = torch.load(src)
    out = OrderedDict()
    for key in [k[: -len(".logits")] for k in cases if k.endswith(".logits")]:
        weight = cases.get(key + ".weight")
        for kind, fn in losses(weight, int(cases[key + ".ignore_index"])).items():
            logits = cases[key + ".logits"].clone().requires_grad_(True)
            value = fn(logits, cases[key + ".target"])
            value.backward()
            out[f"{key}.{kind}.value"] = value.detach()
            out[f"{key}.{kind}.grad"] = logits.grad
    torch.save(out, dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
