// What each command will run with, as JSON (`petseg <command> ... --print-plan`, and the test that every accepted
// option changes it): one serializer per options struct a command hands to the library.
#pragma once

#include <nlohmann/json.hpp>

#include "bench/data_bench.h"
#include "bench/ladder_bench.h"
#include "bench/model_bench.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/synth.h"
#include "fetch/pets_download.h"
#include "model/factory.h"
#include "model/torchscript.h"
#include "train/config.h"
#include "train/export.h"
#include "train/predict.h"

namespace petseg::data {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(AugmentOptions, min_scale, max_scale, flip_probability)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(WorkerOptions, num_workers, prefetch_factor, pin_memory, worker_nice)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(LoaderOptions, num_workers, prefetch_factor, pin_memory, worker_nice, batch_size,
                                   image_size, train, shuffle, drop_last, seed, rank, world_size, border, augment,
                                   bad_samples)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SynthOptions, out, count, seed, junk, min_side, max_side, threads, layout,
                                   split_files, classes_file, rgb_masks)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(DatasetOptions, layout, val_fraction, seed, class_colors, border, ignore_index)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PrepareOptions, quarantine, threads, layout, class_colors)
}  // namespace petseg::data

namespace petseg::fetch {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PetsDownloadOptions, out, mirror)
}

namespace petseg::model {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ModelConfig, arch, backbone, num_classes, aux_loss, weights, backbone_weights,
                                   freeze_backbone)
}  // namespace petseg::model

namespace petseg::train {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(InferenceRequest, resize, image_size, mode, tile, stride, tta, precision,
                                   memory_format)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PredictOptions, checkpoint, inputs, out, torch_script, device, inference)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ExportRequest, model, mirror, checkpoint, out, format, image_size, optimize, force,
                                   opset, static_shape, aux, fp16)
}  // namespace petseg::train

namespace petseg::bench {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(DataBenchOptions, data, split, loader, workers, epochs, repeats, python, python_exe,
                                   json_out)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ModelBenchOptions, model, device, threads, warmup, repeats, cases, variants,
                                   python, compile, optimizer_impls, cudnn_benchmark, compile_timeout_s, ceilings,
                                   python_exe, json_out)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(LadderOptions, data, backbone, device, image_size, batch_size, steps, epochs,
                                   workers, ranks, repeats, python, compile, rungs, cudnn_benchmark, python_exe,
                                   work_dir, json_out, svg_out)
}  // namespace petseg::bench
