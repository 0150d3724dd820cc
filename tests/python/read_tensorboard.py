"""Reads a TensorBoard log folder with TensorBoard's own Python readers and prints what they saw as one JSON line:
  read_tensorboard.py DIR [legacy|plugin]
legacy (default): event_accumulator.EventAccumulator, the API scripts use; plugin: plugin_event_accumulator's, the
TensorBoard server's Python reader (--load_fast=false), which sees every summary as a tensor of its plugin.
  {"scalars": {tag: [[step, value], ...]}, "images": {tag: [[step, width, height], ...]},
   "text": {tag: [[step, markdown], ...]}, "file_version": N}
Everything is kept (size guidance 0). For tests/report/test_tensorboard.cpp (the pinned environment of
scripts/setup.sh has tensorboard)."""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator as legacy
from tensorboard.backend.event_processing import plugin_event_accumulator as plugin
from tensorboard.util import tensor_util


def plugin_tags(acc, plugin_name):
    try:
        return list(acc.PluginTagToContent(plugin_name))
    except KeyError:  # no summary of that plugin
        return []


def read_legacy(path):
    acc = legacy.EventAccumulator(path, size_guidance={k: 0 for k in legacy.DEFAULT_SIZE_GUIDANCE})
    acc.Reload()
    tags = acc.Tags()
    return acc, {
        "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
        "images": {t: [[e.step, e.width, e.height] for e in acc.Images(t)] for t in tags["images"]},
        "text": {t: [[e.step, tensor_util.make_ndarray(e.tensor_proto).tolist()[0].decode()] for e in acc.Tensors(t)]
                 for t in plugin_tags(acc, "text")},
    }


def read_plugin(path):
    acc = plugin.EventAccumulator(path, size_guidance=plugin.STORE_EVERYTHING_SIZE_GUIDANCE)
    acc.Reload()

    def series(plugin_name, convert):
        return {t: [[e.step, *convert(tensor_util.make_ndarray(e.tensor_proto))] for e in acc.Tensors(t)]
                for t in plugin_tags(acc, plugin_name)}

    return acc, {
        "scalars": series("scalars", lambda a: [a.item()]),
        # An image series holds [width, height, png...] as strings (data_compat's migration of Summary.Image).
        "images": series("images", lambda a: [int(a[0]), int(a[1])]),
        "text": series("text", lambda a: [a.tolist()[0].decode()]),
    }


def main():
    path = sys.argv[1]
    reader = sys.argv[2] if len(sys.argv) > 2 else "legacy"
    acc, out = {"legacy": read_legacy, "plugin": read_plugin}[reader](path)
    out["file_version"] = acc.file_version
    print(json.dumps(out))


if __name__ == "__main__":
    main()
