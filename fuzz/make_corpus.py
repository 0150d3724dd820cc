#!/usr/bin/env python3
"""Writes the seed corpora of the weights and image fuzzers (fuzz/corpus/{weights,image}/): small but valid
inputs of every shape the readers accept, so the fuzzers start from the formats' real structure.
The checkpoint and manifest seeds are written by petseg itself (scripts/fuzz.sh --make-corpus)."""
import io
import os
import struct
import sys
from collections import OrderedDict

import torch
from PIL import Image

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def out(kind, name, data):
    os.makedirs(os.path.join(root, kind), exist_ok=True)
    with open(os.path.join(root, kind, name), "wb") as f:
        f.write(data)


def saved(obj, zip_format=True):
    b = io.BytesIO()
    torch.save(obj, b, _use_new_zipfile_serialization=zip_format)
    return b.getvalue()


torch.manual_seed(0)
sd = OrderedDict([("conv.weight", torch.randn(2, 3, 1, 1)), ("bn.running_mean", torch.zeros(2)),
                  ("bn.num_batches_tracked", torch.tensor(3))])
out("weights", "zip_state_dict.pth", saved(sd))
out("weights", "legacy_state_dict.pth", saved(sd, zip_format=False))
base = torch.arange(12, dtype=torch.float32)
views = OrderedDict([("a", base[2:8].view(2, 3)), ("b", base.view(3, 4).t()), ("h", torch.ones(3, dtype=torch.half)),
                     ("m", torch.tensor([True, False])), ("bf", torch.zeros(2, dtype=torch.bfloat16))])
out("weights", "zip_views_dtypes.pth", saved(views))
out("weights", "legacy_views_dtypes.pth", saved(views, zip_format=False))
out("weights", "zip_parameter.pth", saved(OrderedDict([("p", torch.nn.Parameter(torch.ones(2)))])))


def encoded(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def pair(name, image_bytes, trimap_bytes, flags=0):
    out("image", name, bytes([flags]) + struct.pack("<I", len(image_bytes)) + image_bytes + trimap_bytes)


w, h = 24, 16
rgb = Image.new("RGB", (w, h))
rgb.putdata([((x * 10) % 256, (y * 15) % 256, (x * y) % 256) for y in range(h) for x in range(w)])
tri = Image.new("L", (w, h))
tri.putdata([1 if 4 < x < 18 and 3 < y < 12 else (3 if 3 <= x <= 19 and 2 <= y <= 13 else 2)
             for y in range(h) for x in range(w)])
tri_png = encoded(tri, "PNG")
pair("jpeg_rgb", encoded(rgb, "JPEG", quality=80), tri_png)
pair("jpeg_rgb_scaled", encoded(rgb.resize((64, 48)), "JPEG", quality=80), encoded(tri.resize((64, 48)), "PNG"), 1)
pair("jpeg_progressive", encoded(rgb, "JPEG", progressive=True), tri_png)
pair("jpeg_gray", encoded(rgb.convert("L"), "JPEG"), tri_png)
pair("jpeg_cmyk", encoded(rgb.convert("CMYK"), "JPEG"), tri_png)
pair("png_rgba", encoded(rgb.convert("RGBA"), "PNG"), tri_png)
pair("png_palette", encoded(rgb.convert("P"), "PNG"), encoded(tri.convert("P"), "PNG"))
pair("png_16bit_trimap", encoded(rgb, "PNG"), encoded(tri.convert("I;16"), "PNG"))
bad = tri.copy()
bad.putpixel((0, 0), 7)
pair("trimap_bad_value", encoded(rgb, "JPEG"), encoded(bad, "PNG"))
pair("trimap_wrong_size", encoded(rgb, "JPEG"), encoded(tri.resize((10, 10)), "PNG"))
full = encoded(rgb, "JPEG")
pair("jpeg_truncated", full[: len(full) // 2], tri_png)
print("wrote", root, file=sys.stderr)


# Archives: the shapes a data set archive has (folders, files, gzip or not) and the hostile ones the extractor
# refuses (a path with .., an absolute path, links leading out, a device file).
import tarfile


def tar_bytes(entries, gz=True):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w:gz" if gz else "w") as t:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif kind == "file":
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                t.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
                t.addfile(info)
            elif kind == "chardev":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
                t.addfile(info)
    return b.getvalue()


good = [("images", "dir", None), ("images/a.jpg", "file", b"\xff\xd8\xff" + b"x" * 40),
        ("images/b.jpg", "hardlink", "images/a.jpg"), ("images/c.jpg", "symlink", "a.jpg")]
out("archive", "good.tar.gz", tar_bytes(good))
out("archive", "good.tar", tar_bytes(good, gz=False))
out("archive", "dotdot.tar.gz", tar_bytes([("images/../../evil", "file", b"x")]))
out("archive", "absolute.tar.gz", tar_bytes([("/tmp/evil", "file", b"x")]))
out("archive", "symlink_out.tar.gz", tar_bytes([("images", "dir", None), ("images/l", "symlink", "../../etc")]))
out("archive", "hardlink_out.tar.gz", tar_bytes([("images/h", "hardlink", "/etc/passwd")]))
out("archive", "device.tar.gz", tar_bytes([("images/null", "chardev", None)]))
