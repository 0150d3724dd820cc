#!/usr/bin/env python3
"""The Python way of loading Oxford-IIIT Pet for segmentation, as the original project did it: a torch Dataset
that opens images with PIL, joint transforms in the style of torchvision's references/segmentation (random
resize of the shorter side in [0.5, 2.0] x size, horizontal flip, random crop with padding, to tensor,
ImageNet normalization), and torch.utils.data.DataLoader with N workers.

Used by `petseg bench data` as the reference it is measured against; prints one JSON line.
Exit code 3 when torch/torchvision are not installed.
"""
import argparse
import json
import os
import random
import sys
import time
import warnings

try:
    import numpy as np
    import torch
    import torchvision.transforms as T
    import torchvision.transforms.functional as F
    from PIL import Image
except ImportError as e:  # no torch/torchvision in this interpreter: the caller reports it
    print(f"data_bench.py: {e}", file=sys.stderr)
    sys.exit(3)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def pad_if_smaller(img, size, fill=0):
    min_size = min(img.size)
    if min_size < size:
        ow, oh = img.size
        padh = size - oh if oh < size else 0
        padw = size - ow if ow < size else 0
        img = F.pad(img, (0, 0, padw, padh), fill=fill)
    return img


class TrainTransform:
    """torchvision references/segmentation/presets.py SegmentationPresetTrain, with base = crop = size."""

    def __init__(self, size, border_ignore):
        self.size = size
        self.min_size = int(0.5 * size)
        self.max_size = int(2.0 * size)
        lut = torch.full((256,), 255, dtype=torch.int64)
        lut[1], lut[2], lut[3] = 0, 1, (255 if border_ignore else 2)
        self.lut = lut

    def __call__(self, image, target):
        size = random.randint(self.min_size, self.max_size)
        image = F.resize(image, size)
        target = F.resize(target, size, interpolation=T.InterpolationMode.NEAREST)
        if random.random() < 0.5:
            image = F.hflip(image)
            target = F.hflip(target)
        image = pad_if_smaller(image, self.size)
        target = pad_if_smaller(target, self.size, fill=255)
        crop_params = T.RandomCrop.get_params(image, (self.size, self.size))
        image = F.crop(image, *crop_params)
        target = F.crop(target, *crop_params)
        image = F.pil_to_tensor(image)
        image = F.convert_image_dtype(image, torch.float)
        image = F.normalize(image, mean=MEAN, std=STD)
        target = torch.as_tensor(np.array(target), dtype=torch.int64)
        target = self.lut[target]
        return image, target


class OxfordPets(torch.utils.data.Dataset):
    def __init__(self, root, names, transform):
        self.root = root
        self.names = names
        self.transform = transform

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        name = self.names[i]
        image = Image.open(os.path.join(self.root, "images", name + ".jpg")).convert("RGB")
        target = Image.open(os.path.join(self.root, "annotations", "trimaps", name + ".png"))
        return self.transform(image, target)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--names", required=True, help="file with one sample name per line")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1, help="measurements; the median is reported")
    p.add_argument("--pin-memory", action="store_true")
    p.add_argument("--border", default="3class", choices=["3class", "ignore"])
    args = p.parse_args()

    with open(args.names) as f:
        names = [line.strip() for line in f if line.strip()]
    dataset = OxfordPets(args.data, names, TrainTransform(args.image_size, args.border == "ignore"))
    # More workers than cores is part of what is measured, not something to warn about.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    # persistent_workers spares Python the worker start-up of every epoch after the first: the comparison
    # favours the reference, never petseg.
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True,
                                         num_workers=args.workers, pin_memory=args.pin_memory,
                                         persistent_workers=args.workers > 0)
    rates = []
    for _ in range(args.repeats):
        images = 0
        start = time.perf_counter()
        for _ in range(args.epochs):
            for image, target in loader:
                images += image.shape[0]
        rates.append(images / (time.perf_counter() - start))
    rates.sort()
    print(json.dumps({"workers": args.workers, "images": images, "images_per_s": rates[len(rates) // 2],
                      "all_images_per_s": rates}))


if __name__ == "__main__":
    main()
