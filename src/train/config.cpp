// TrainConfig <-> JSON from one field table, and option validation against the options' choice lists.
#include "train/config.h"

#include <functional>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/json_check.h"
#include "dist/communicator.h"

namespace petseg::train {
namespace {

using json = nlohmann::json;

// One entry per saved field: its key, how to write it and how to read it back. `required`: checkpoints of every
// petseg version hold it; the others were added later and take their default when a file lacks them.
struct Field {
  const char* key;
  std::function<json(const TrainConfig&)> get;
  std::function<void(TrainConfig&, const json&)> set;
  bool required;
};

// A field for a member reached by `access` (a lambda returning a reference); paths are saved as strings.
template <class Access>
Field field(const char* key, Access access, bool required = true) {
  using T = std::decay_t<decltype(access(std::declval<TrainConfig&>()))>;
  return Field{key,
               [access](const TrainConfig& c) {
                 const T& v = access(const_cast<TrainConfig&>(c));
                 if constexpr (std::is_same_v<T, std::filesystem::path>) {
                   return json(v.string());
                 } else {
                   return json(v);
                 }
               },
               [access](TrainConfig& c, const json& j) {
                 if constexpr (std::is_same_v<T, std::filesystem::path>) {
                   access(c) = j.get<std::string>();
                 } else {
                   access(c) = j.get<T>();
                 }
               },
               required};
}

#define PETSEG_FIELD(key, member, ...) field(key, [](TrainConfig& c) -> auto& { return c.member; }, ##__VA_ARGS__)

const std::vector<Field>& fields() {
  static const std::vector<Field> table = {
      PETSEG_FIELD("data", data),
      PETSEG_FIELD("runs_dir", runs_dir),
      PETSEG_FIELD("name", name),
      PETSEG_FIELD("epochs", epochs),
      PETSEG_FIELD("batch_size", batch_size),
      PETSEG_FIELD("image_size", image_size),
      PETSEG_FIELD("lr", lr),
      PETSEG_FIELD("optimizer", optimizer),
      PETSEG_FIELD("momentum", momentum),
      PETSEG_FIELD("weight_decay", weight_decay),
      PETSEG_FIELD("warmup_iters", warmup_iters),
      PETSEG_FIELD("aux_weight", aux_weight),
      PETSEG_FIELD("border", border),
      PETSEG_FIELD("threads", threads),
      PETSEG_FIELD("seed", seed),
      PETSEG_FIELD("device", device),
      PETSEG_FIELD("amp", amp),
      PETSEG_FIELD("channels_last", channels_last),
      PETSEG_FIELD("num_workers", num_workers),
      PETSEG_FIELD("pin_memory", pin_memory),
      PETSEG_FIELD("cudnn_benchmark", cudnn_benchmark, false),
      PETSEG_FIELD("torch_script", torch_script),
      PETSEG_FIELD("data_parallel", data_parallel, false),
      PETSEG_FIELD("sync_bn", sync_bn, false),
      PETSEG_FIELD("backbone", model.backbone),
      PETSEG_FIELD("num_classes", model.num_classes),
      PETSEG_FIELD("aux_loss", model.aux_loss),
      PETSEG_FIELD("weights", model.weights),
      PETSEG_FIELD("backbone_weights", model.backbone_weights),
      PETSEG_FIELD("freeze_backbone", model.freeze_backbone),
      PETSEG_FIELD("log_interval", log_interval),
      PETSEG_FIELD("profile_steps", profile_steps),
      PETSEG_FIELD("max_steps_per_epoch", max_steps_per_epoch),
      PETSEG_FIELD("eval_max_batches", eval_max_batches),
      PETSEG_FIELD("vis_samples", vis_samples),
      PETSEG_FIELD("stop_after_steps", stop_after_steps, false),
      PETSEG_FIELD("distributed", distributed, false),
      PETSEG_FIELD("backend", backend, false),
      PETSEG_FIELD("dist_timeout_s", dist_timeout_s, false),
  };
  return table;
}

#undef PETSEG_FIELD

}  // namespace

std::string to_json(const TrainConfig& c) {
  json j = json::object();
  for (const Field& f : fields()) j[f.key] = f.get(c);
  return j.dump(1);
}

TrainConfig config_from_json(const std::string& text) {
  const json j = json::parse(text);
  check_json_numbers(j, "configuration");
  TrainConfig c;
  for (const Field& f : fields()) {
    if (j.contains(f.key)) {
      f.set(c, j.at(f.key));
    } else if (f.required) {
      j.at(f.key);  // throws: "key 'x' not found", which the callers report with the file's name
    }
  }
  return c;
}

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  for (const Field& f : fields()) keys.push_back(f.key);
  return keys;
}

void validate(const TrainConfig& c) {
  PETSEG_CHECK(c.epochs >= 1, "--epochs must be >= 1, got ", c.epochs);
  PETSEG_CHECK(c.lr > 0, "--lr must be > 0, got ", c.lr);
  check_choice("--optimizer", c.optimizer, kOptimizerChoices);
  check_choice("--amp", c.amp, kAmpChoices);
  check_choice("--device", c.device, kDeviceChoices);
  check_choice("--border", c.border, data::kBorderChoices);
  check_choice("--backend", c.backend, dist::kBackendChoices);
  check_choice("--backbone", c.model.backbone, model::kBackboneChoices);
  PETSEG_CHECK(c.log_interval >= 1, "--log-interval must be >= 1");
  PETSEG_CHECK(!(c.sync_bn && c.torch_script),
               "--sync-bn cannot be traced into TorchScript (its collectives run inside autograd); drop one of "
               "--sync-bn, --torch-script");
  PETSEG_CHECK(c.batch_size >= 2 || c.model.freeze_backbone, "--batch-size must be >= 2 to train BatchNorm layers");
}

}  // namespace petseg::train
