"""mmsegmentation's whole and slide inference and its test-time augmentation, written as mmsegmentation writes them
(EncoderDecoder.slide_inference, EncoderDecoder.inference, SegTTAModel.merge_preds), around a one-layer convolutional
"model", for tests/train/test_inference.cpp:
  inference_reference.py IN.pth OUT.pth
IN (written by the test) holds, for each case K: K.image [1,3,H,W] float32, K.weight [C,3,k,k] and K.bias [C] (the
model: a k x k convolution, zero padding k // 2, so windows see borders the whole image does not), K.scales [S]
float64, and 0-d int64 K.flip, K.slide, K.tile, K.stride, K.out_h, K.out_w.
OUT gets K.scores [1,C,out_h,out_w]: each augmentation's logits resized to the output size (bilinear,
align_corners=False) and flipped back; one augmentation: its logits; several: the mean of their softmax.
Images are rescaled as petseg rescales them (torchvision's tensor resize: bilinear with antialias, each side
int(side * scale + 0.5) as mmcv rounds it); mmsegmentation rescales with cv2 before normalizing."""
import sys
from collections import OrderedDict

import torch
import torch.nn.functional as F


def model(x, weight, bias):
    return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)


def slide_inference(img, weight, bias, crop, stride):
    """mmseg.models.segmentors.EncoderDecoder.slide_inference with crop_size = (crop, crop), stride = (stride, stride)."""
    h_stride, w_stride = stride, stride
    h_crop, w_crop = crop, crop
    batch_size, _, h_img, w_img = img.size()
    out_channels = weight.shape[0]
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    preds = img.new_zeros((batch_size, out_channels, h_img, w_img))
    count_mat = img.new_zeros((batch_size, 1, h_img, w_img))
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1 = h_idx * h_stride
            x1 = w_idx * w_stride
            y2 = min(y1 + h_crop, h_img)
            x2 = min(x1 + w_crop, w_img)
            y1 = max(y2 - h_crop, 0)
            x1 = max(x2 - w_crop, 0)
            crop_seg_logit = model(img[:, :, y1:y2, x1:x2], weight, bias)
            preds += F.pad(crop_seg_logit, (int(x1), int(preds.shape[3] - x2), int(y1), int(preds.shape[2] - y2)))
            count_mat[:, :, y1:y2, x1:x2] += 1
    assert (count_mat == 0).sum() == 0
    return preds / count_mat


def scores(case):
    image, weight, bias = case["image"], case["weight"], case["bias"]
    out_size = (int(case["out_h"]), int(case["out_w"]))
    flips = [False, True] if int(case["flip"]) else [False]
    scales = case["scales"].tolist()
    augmented = len(scales) * len(flips) > 1
    merged = []
    for scale in scales:
        h, w = int(image.shape[2] * scale + 0.5), int(image.shape[3] * scale + 0.5)
        img = image if scale == 1.0 else F.interpolate(image, size=(h, w), mode="bilinear", antialias=True,
                                                       align_corners=False)
        for flip in flips:
            x = img.flip(3) if flip else img
            if int(case["slide"]):
                logit = slide_inference(x, weight, bias, int(case["tile"]), int(case["stride"]))
            else:
                logit = model(x, weight, bias)
            if tuple(logit.shape[2:]) != out_size:
                logit = F.interpolate(logit, size=out_size, mode="bilinear", align_corners=False)
            if augmented:
                logit = logit.softmax(dim=1)
            if flip:
                logit = logit.flip(dims=(3,))
            merged.append(logit)
    return sum(merged) / len(merged) if augmented else merged[0]


def main(src, dst):
    cases = torch.load(src)
    out = OrderedDict()
    with torch.inference_mode():
        for key in [k[: -len(".image")] for k in cases if k.endswith(".image")]:
            case = {k[len(key) + 1:]: v for k, v in cases.items() if k.startswith(key + ".")}
            out[key + ".scores"] = scores(case).contiguous()
    torch.save(out, dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
