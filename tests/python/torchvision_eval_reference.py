"""torchvision's reference evaluation of a model on an Oxford-IIIT Pet layout's test split: references/segmentation's
SegmentationPresetEval (the v1 transforms: RandomResize(base_size, base_size) on PIL images, PILToTensor,
ConvertImageDtype, Normalize), train.py's evaluate (batch 1, model(image)["out"].argmax(1)) and utils.ConfusionMatrix,
copied below because the references are not part of the torchvision package. What `petseg eval --resize shorter`
is compared with (tests/train/test_inference.cpp, docs/deployment.md):
  torchvision_eval_reference.py --data DIR --weights W.pth --model NAME --num-classes C --base-size S
      [--border 3class|ignore] [--threads N]
W.pth holds torchvision's keys: `petseg export --checkpoint runs/x/best.pt --format state-dict --out W.pth`.
The samples are the test split's names (annotations/test.txt) that `petseg prepare` accepted, when it ran. Prints one
JSON object: miou (the mean over classes, as the reference prints it), iou, pixel_accuracy, images, confusion_matrix
(rows: target class)."""
import argparse
import json
import os
import random

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F


# references/segmentation/transforms.py
class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, image, target):
        for t in self.transforms:
            image, target = t(image, target)
        return image, target


class RandomResize:
    def __init__(self, min_size, max_size=None):
        self.min_size = min_size
        if max_size is None:
            max_size = min_size
        self.max_size = max_size

    def __call__(self, image, target):
        size = random.randint(self.min_size, self.max_size)
        image = F.resize(image, size)
        target = F.resize(target, size, interpolation=T.InterpolationMode.NEAREST)
        return image, target


class PILToTensor:
    def __call__(self, image, target):
        image = F.pil_to_tensor(image)
        target = torch.as_tensor(np.array(target), dtype=torch.int64)
        return image, target


class ConvertImageDtype:
    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, image, target):
        image = F.convert_image_dtype(image, self.dtype)
        return image, target


class Normalize:
    def __init__(self, mean, std):
        self.mean = mean
        self.std = std

    def __call__(self, image, target):
        image = F.normalize(image, mean=self.mean, std=self.std)
        return image, target


# references/segmentation/presets.py
class SegmentationPresetEval:
    def __init__(self, *, base_size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        self.transforms = Compose(
            [
                RandomResize(base_size, base_size),
                PILToTensor(),
                ConvertImageDtype(torch.float),
                Normalize(mean=mean, std=std),
            ]
        )

    def __call__(self, img, target):
        return self.transforms(img, target)


# references/segmentation/utils.py
class ConfusionMatrix:
    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.mat = None

    def update(self, a, b):
        n = self.num_classes
        if self.mat is None:
            self.mat = torch.zeros((n, n), dtype=torch.int64, device=a.device)
        with torch.inference_mode():
            k = (a >= 0) & (a < n)
            inds = n * a[k].to(torch.int64) + b[k]
            self.mat += torch.bincount(inds, minlength=n**2).reshape(n, n)

    def compute(self):
        h = self.mat.float()
        acc_global = torch.diag(h).sum() / h.sum()
        acc = torch.diag(h) / h.sum(1)
        iu = torch.diag(h) / (h.sum(1) + h.sum(0) - torch.diag(h))
        return acc_global, acc, iu


def test_samples(root):
    names = []
    with open(os.path.join(root, "annotations", "test.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                names.append(line.split()[0])
    manifest = os.path.join(root, "petseg_manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            accepted = {s["name"] for s in json.load(f)["samples"] if s["accepted"]}
        names = [n for n in names if n in accepted]
    return [(os.path.join(root, "images", n + ".jpg"), os.path.join(root, "annotations", "trimaps", n + ".png"))
            for n in names]


def trimap_lut(border):
    """petseg's trimap classes: 1 pet -> 0, 2 background -> 1, 3 border -> 2 (or 255 with --border ignore)."""
    lut = torch.full((256,), 255, dtype=torch.int64)
    lut[1], lut[2], lut[3] = 0, 1, 2 if border == "3class" else 255
    return lut


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--num-classes", type=int, required=True)
    p.add_argument("--base-size", type=int, required=True)
    p.add_argument("--border", default="3class", choices=["3class", "ignore"])
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    state = torch.load(args.weights)
    kwargs = {"aux_loss": True} if any(k.startswith("aux_classifier.") for k in state) else {}
    model = getattr(torchvision.models.segmentation, args.model)(weights=None, weights_backbone=None,
                                                                 num_classes=args.num_classes, **kwargs)
    model.load_state_dict(state)
    model.eval()
    preset = SegmentationPresetEval(base_size=args.base_size)
    lut = trimap_lut(args.border)
    confmat = ConfusionMatrix(args.num_classes)
    images = 0
    with torch.inference_mode():
        for image_path, mask_path in test_samples(args.data):
            image, target = preset(Image.open(image_path).convert("RGB"), Image.open(mask_path))
            target = lut[target]
            output = model(image.unsqueeze(0))["out"]
            confmat.update(target.flatten(), output.argmax(1).flatten())
            images += 1
    acc_global, _, iu = confmat.compute()
    print(json.dumps({"miou": iu.mean().item(), "iou": iu.tolist(), "pixel_accuracy": acc_global.item(),
                      "images": images, "confusion_matrix": confmat.mat.tolist()}))


if __name__ == "__main__":
    main()
