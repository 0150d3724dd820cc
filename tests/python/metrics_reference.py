"""torchmetrics' per-class segmentation scores, the reference of petseg's (src/metrics/confusion.h), for
tests/metrics/test_confusion.cpp:
  metrics_reference.py IN.pth OUT.pth
IN (written by the test) holds target [N,H,W] and pred [N,H,W] (int64; target 255 is ignored) and num_classes (0-d).
OUT gets iou, dice, precision, recall ([C] each) from MulticlassJaccardIndex, MulticlassF1Score, MulticlassPrecision
and MulticlassRecall with average=None, ignore_index=255 (every other argument at its default), and the same four
with average="macro" as miou, mdice, mprecision, mrecall (0-d), all as float64."""
import sys
from collections import OrderedDict

import torch
import torchmetrics
from torchmetrics.classification import (MulticlassF1Score, MulticlassJaccardIndex, MulticlassPrecision,
                                         MulticlassRecall)

TORCHMETRICS_VERSION = "1.9.0"  # scripts/pyenv.sh pins it; another version is another reference
METRICS = {"iou": MulticlassJaccardIndex, "dice": MulticlassF1Score, "precision": MulticlassPrecision,
           "recall": MulticlassRecall}


def main(src, dst):
    if torchmetrics.__version__ != TORCHMETRICS_VERSION:
        sys.exit(f"torchmetrics {torchmetrics.__version__}, not the pinned {TORCHMETRICS_VERSION}")
    data = torch.load(src)
    n = int(data["num_classes"])
    out = OrderedDict()
    for name, metric in METRICS.items():
        for average, key in ((None, name), ("macro", "m" + name)):
            m = metric(num_classes=n, average=average, ignore_index=255)
            m.update(data["pred"], data["target"])
            out[key] = m.compute().to(torch.float64)
    torch.save(out, dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
