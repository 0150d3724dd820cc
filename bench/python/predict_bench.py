#!/usr/bin/env python3
"""`petseg predict` in Python, the way a user of torchvision and PIL writes it, doing the same work: the state dict
petseg exported (`petseg export --checkpoint RUN/best.pt --format state-dict`) loaded into torchvision's builder of
the same name; per image, in name order: decode (PIL, converted to RGB), resize to IMAGE_SIZE x IMAGE_SIZE (PIL's
antialiased bilinear, as petseg's evaluation transform `data::eval_geometry`), ImageNet normalization, the forward
under torch.no_grad (batch 1), the logits upsampled bilinear (align_corners=False) to the image's own size, argmax,
and two PNGs (PIL, zlib level 3 as petseg writes them): <stem>_mask.png with the pets' trimap values (class + 1: 1 pet,
2 background, 3 border) and <stem>_overlay.png (the image and the class colours half and half, petseg's pets palette).
Prints one JSON line at the end: {"images": n, "seconds": ..., "images_per_s": ..., "torch": ..., ...}.
Exit code 3 without torch/torchvision/PIL/numpy.
"""
import argparse
import json
import os
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torchvision
    from PIL import Image
except ImportError as e:  # the caller reports it
    print(f"predict_bench.py: {e}", file=sys.stderr)
    sys.exit(3)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PETS_PALETTE = np.array([[255, 140, 0], [30, 90, 200], [255, 230, 40]], dtype=np.float32)  # pet, background, border
EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def load_model(args, device):
    state = torch.load(args.state_dict, map_location="cpu", weights_only=True)
    build = getattr(torchvision.models.segmentation, args.model)
    aux = any(k.startswith("aux_classifier.") for k in state)
    model = build(weights=None, weights_backbone=None, num_classes=args.num_classes, aux_loss=aux)
    model.load_state_dict(state)
    model = model.to(device).eval()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--state-dict", required=True, help="petseg export --format state-dict's file")
    p.add_argument("--model", default="deeplabv3_resnet50", help="torchvision's builder name")
    p.add_argument("--num-classes", type=int, default=3)
    p.add_argument("--image-size", type=int, required=True, help="the checkpoint's training size (the square resize)")
    p.add_argument("--input", required=True, help="a folder of .jpg/.png images")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: torch.autocast")
    p.add_argument("--channels-last", action="store_true")
    args = p.parse_args()

    start = time.perf_counter()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = load_model(args, device)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    files = sorted(f for f in os.listdir(args.input) if f.endswith(EXTENSIONS) and not f.startswith("."))
    os.makedirs(args.out, exist_ok=True)
    size = args.image_size
    for name in files:
        image = Image.open(os.path.join(args.input, name)).convert("RGB")
        width, height = image.size
        rgb = np.asarray(image)
        x = torch.from_numpy(np.array(image.resize((size, size), Image.BILINEAR))).permute(2, 0, 1)[None]
        x = ((x.float() / 255 - mean) / std).to(device)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            logits = model(x)["out"]
            full = F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)
        classes = full.argmax(1)[0].to("cpu", torch.uint8).numpy()
        stem = os.path.splitext(name)[0]
        Image.fromarray(classes + 1).save(os.path.join(args.out, f"{stem}_mask.png"), compress_level=3)
        overlay = (rgb.astype(np.float32) * 0.5 + PETS_PALETTE[classes] * 0.5).astype(np.uint8)
        Image.fromarray(overlay).save(os.path.join(args.out, f"{stem}_overlay.png"), compress_level=3)
    seconds = time.perf_counter() - start
    print(json.dumps({"images": len(files), "seconds": seconds, "images_per_s": len(files) / seconds,
                      "torch": torch.__version__, "torchvision": torchvision.__version__,
                      "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
