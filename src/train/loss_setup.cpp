// The set-up step of the run's loss: --loss, and --class-weights resolved once per run (auto: median frequency over
// the training split's pixel counts, the manifest's or counted over the ranks), printed, written to the run folder and
// kept in the checkpoint, whose weights a resume trains with.
#include <ATen/ops/tensor.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/fs.h"
#include "core/log.h"
#include "train/class_weights.h"
#include "train/run_context.h"

namespace petseg::train {
namespace {

using json = nlohmann::json;

// The training split's counts as the manifest records them, or counted from its masks: each rank its share, summed
// over the ranks, so that every rank holds the same counts. `source` says which, for the log and the run folder.
data::CountedMasks training_counts(TrainContext& ctx, std::string& source) {
  const data::SegmentationDataset& set = *ctx.train_set;
  distributed::Communicator& comm = *ctx.comm;
  const bool recorded = set.recorded_class_counts().has_value();
  if (comm.world_size() > 1) {  // every rank must take the same branch below: one of them runs a collective
    distributed::check_same_on_all_ranks(
        comm, "the class counts", recorded ? "recorded" : "missing", [&](const std::string& rank0) {
          return detail::str_cat("the manifest here has its class counts ", recorded ? "recorded" : "missing",
                                 ", rank 0's ", rank0, " (run petseg prepare again)");
        });
  }
  if (recorded) {
    source = "manifest";
    return {*set.recorded_class_counts(), int64_t(set.size()), {}};
  }
  source = "counted";
  log_info("--class-weights auto: counting the classes of ", set.size(), " training masks",
           comm.world_size() > 1 ? ", shared out over the ranks" : "",
           " (petseg prepare records them in the data set's manifest once)");
  data::CountedMasks mine =
      data::count_class_pixels(set, data::parse_border_mode(ctx.config.spec.border), ctx.config.exec.threads,
                               size_t(comm.rank()), size_t(comm.world_size()));
  if (!mine.unreadable.empty()) {
    log_warning("--class-weights auto: ", mine.unreadable.size(), " training samples could not be read and are not ",
                "counted (the first: ", mine.unreadable.front(), "); petseg prepare says why");
  }
  std::vector<int64_t> packed = mine.counts.class_pixels;
  packed.insert(packed.end(), mine.counts.image_pixels.begin(), mine.counts.image_pixels.end());
  packed.push_back(mine.masks);
  at::Tensor sums = at::tensor(packed, at::kLong);
  if (comm.world_size() > 1) comm.allreduce_sum(sums);
  const size_t c = mine.counts.class_pixels.size();
  const int64_t* all = sums.data_ptr<int64_t>();
  data::CountedMasks total{data::ClassPixelCounts(int(c)), all[2 * c], {}};
  for (size_t k = 0; k < c; ++k) {
    total.counts.class_pixels[k] = all[k];
    total.counts.image_pixels[k] = all[c + k];
  }
  return total;
}

// runs/<name>/class_weights.json: what the weights came from, for the user (a resume reads the checkpoint's).
void write_weights_file(const TrainContext& ctx, const std::string& source, const data::CountedMasks* counted) {
  json j = {{"class_weights", ctx.config.spec.class_weights},
            {"source", source},
            {"classes", ctx.class_names},
            {"weights", ctx.state.class_weights}};
  if (counted) {
    j["border"] = ctx.config.spec.border;
    j["masks"] = counted->masks;
    j["class_pixels"] = counted->counts.class_pixels;
    j["image_pixels"] = counted->counts.image_pixels;
  }
  write_file_atomic(ctx.run_dir / "class_weights.json", j.dump(1) + "\n");
}

std::string weights_text(const std::vector<double>& weights, const std::vector<std::string>& names) {
  std::string out;
  for (size_t c = 0; c < weights.size(); ++c) {
    char value[32];
    std::snprintf(value, sizeof value, "%.4g", weights[c]);
    out += (out.empty() ? "" : ", ") + (c < names.size() ? names[c] : std::to_string(c)) + " " + value;
  }
  return out;
}

// The weights --class-weights asks for (not none), resolved: the checkpoint's on a resume, else the list given, else
// median frequency over the training split. Returns where they came from.
std::string resolve_weights(TrainContext& ctx, const ClassWeightsOption& asked) {
  std::vector<double>& weights = ctx.state.class_weights;
  const size_t classes = ctx.class_names.size();
  if (ctx.resumed && !weights.empty()) {
    PETSEG_CHECK(weights.size() == classes, "--resume ", ctx.run_dir.string(), ": the checkpoint holds ",
                 weights.size(), " class weights for ", classes, " classes");
    return "the run's checkpoint";
  }
  if (asked.kind == ClassWeightsOption::Kind::kExplicit) {
    weights = asked.weights;
    if (ctx.lead) write_weights_file(ctx, "--class-weights", nullptr);
    return "--class-weights";
  }
  std::string source;
  const data::CountedMasks counted = training_counts(ctx, source);
  weights = median_frequency_weights(counted.counts.class_pixels, counted.counts.image_pixels);
  for (size_t c = 0; c < classes; ++c) {
    if (weights[c] > 0) continue;
    log_warning("--class-weights auto: class ", ctx.class_names[c], " has no labelled pixel in the training split: ",
                "its weight is 0, so the cross-entropy never learns it");
  }
  if (ctx.lead) write_weights_file(ctx, source, &counted);
  return detail::str_cat("median frequency over the ", counted.masks, " training masks, ",
                         source == "manifest" ? "counted by petseg prepare" : "counted now");
}

}  // namespace

void setup_loss(TrainContext& ctx) {
  const RunSpec& s = ctx.config.spec;
  Loss& loss = ctx.step.loss;
  loss = Loss{};
  loss.kind = parse_loss_kind(s.loss);
  const ClassWeightsOption asked = parse_class_weights(s.class_weights, int(ctx.class_names.size()));
  if (asked.kind == ClassWeightsOption::Kind::kNone) {
    ctx.state.class_weights.clear();
    log_info("loss: ", loss_kind_name(loss.kind));
    return;
  }
  const std::string source = resolve_weights(ctx, asked);
  loss.class_weights = class_weights_tensor(ctx.state.class_weights, ctx.rt.device);
  log_info("loss: ", loss_kind_name(loss.kind), ", class weights of its cross-entropy (",
           s.class_weights == "auto" ? "auto, " : "", source,
           "): ", weights_text(ctx.state.class_weights, ctx.class_names));
}

}  // namespace petseg::train
