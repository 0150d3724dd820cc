// RunSpec and ExecOptions <-> JSON from one field table each, their comparison, and option validation.
#include "train/config.h"

#include <algorithm>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/json_check.h"
#include "data/layout.h"
#include "data/oxford_pets.h"
#include "distributed/communicator.h"
#include "train/class_weights.h"
#include "train/loss.h"

namespace petseg::train {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// One entry per saved field of a part S: its key, how to write it and how to read it back. `required`: checkpoints
// of every petseg version hold it; the others were added later and take their default when a file lacks them.
template <class S>
struct Field {
  const char* key;
  std::function<json(const S&)> get;
  std::function<void(S&, const json&)> set;
  bool required;
  bool is_path;
  json absent;  // not required: the value a file without the key means (null: the struct's default)
};

// A field for a member reached by `access` (a lambda returning a reference); paths are saved as strings.
template <class S, class Access>
Field<S> field(const char* key, Access access, bool required = true, json absent = nullptr) {
  using T = std::decay_t<decltype(access(std::declval<S&>()))>;
  constexpr bool kPath = std::is_same_v<T, fs::path>;
  return Field<S>{key,
                  [access](const S& c) {
                    const T& v = access(const_cast<S&>(c));
                    if constexpr (kPath) {
                      return json(v.string());
                    } else {
                      return json(v);
                    }
                  },
                  [access](S& c, const json& j) {
                    if constexpr (kPath) {
                      access(c) = j.get<std::string>();
                    } else {
                      access(c) = j.get<T>();
                    }
                  },
                  required, kPath, std::move(absent)};
}

#define PETSEG_FIELD(S, key, member, ...) field<S>(key, [](S& c) -> auto& { return c.member; }, ##__VA_ARGS__)

// --model: torchvision's name, arch and backbone together. An older config's "arch" holds the arch alone (its backbone
// has a key of its own, read after this one); a name torchvision does not have is left for validate() to refuse.
Field<RunSpec> model_field() {
  return {"model", [](const RunSpec& s) { return json(model::model_name(s.model)); },
          [](RunSpec& s, const json& j) {
            const std::string v = j.get<std::string>();
            if (std::count(model::kModelChoices.begin(), model::kModelChoices.end(), v)) {
              model::set_model_name(s.model, v);
            } else {
              s.model.arch = v;
            }
          },
          /*required=*/false, /*is_path=*/false, /*absent=*/nullptr};
}

// The keys older checkpoints and configs hold for a field of today (a config is read by both, written by today's):
// each key is its option's name in snake case (--max-steps: max_steps).
const std::map<std::string, std::string> kOlderKeys = {
    {"max_steps_per_epoch", "max_steps"}, {"eval_max_batches", "eval_batches"}, {"arch", "model"},
    {"dist_timeout_s", "dist_timeout"},   {"profile_steps", "profile"},         {"stop_after_steps", "stop_after"},
    {"weights_mirror", "mirror"},
};

// The value of `key` in `j`, under today's key or an older one; null when there is none.
const json* find_key(const json& j, const std::string& key) {
  if (j.contains(key)) return &j.at(key);
  for (const auto& [older, today] : kOlderKeys) {
    if (today == key && j.contains(older)) return &j.at(older);
  }
  return nullptr;
}

// "--max-steps" for "max_steps": every key is its option's name.
std::string option_for(const std::string& key) {
  std::string name = "--" + key;
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

// The keys are those of the flat configuration before the split, so older checkpoints read field by field.
const std::vector<Field<RunSpec>>& spec_fields() {
  static const std::vector<Field<RunSpec>> table = {
      PETSEG_FIELD(RunSpec, "data", data),
      PETSEG_FIELD(RunSpec, "epochs", epochs),
      PETSEG_FIELD(RunSpec, "batch_size", batch_size),
      PETSEG_FIELD(RunSpec, "image_size", image_size),
      PETSEG_FIELD(RunSpec, "lr", lr),
      PETSEG_FIELD(RunSpec, "optimizer", optimizer),
      PETSEG_FIELD(RunSpec, "momentum", momentum),
      PETSEG_FIELD(RunSpec, "weight_decay", weight_decay),
      PETSEG_FIELD(RunSpec, "warmup_iters", warmup_iters),
      PETSEG_FIELD(RunSpec, "aux_weight", aux_weight),
      PETSEG_FIELD(RunSpec, "border", border),
      PETSEG_FIELD(RunSpec, "seed", seed),
      PETSEG_FIELD(RunSpec, "amp", amp),
      PETSEG_FIELD(RunSpec, "sync_bn", sync_bn, false),
      model_field(),
      PETSEG_FIELD(RunSpec, "backbone", model.backbone),
      PETSEG_FIELD(RunSpec, "num_classes", model.num_classes),
      PETSEG_FIELD(RunSpec, "aux_loss", model.aux_loss),
      PETSEG_FIELD(RunSpec, "weights", model.weights),
      PETSEG_FIELD(RunSpec, "backbone_weights", model.backbone_weights),
      PETSEG_FIELD(RunSpec, "freeze_backbone", model.freeze_backbone),
      PETSEG_FIELD(RunSpec, "max_steps", max_steps),
      PETSEG_FIELD(RunSpec, "eval_batches", eval_batches),
      // Runs saved before these existed trained every head at one rate and read the Oxford-IIIT Pet layout.
      PETSEG_FIELD(RunSpec, "aux_lr_mult", aux_lr_mult, false, 1.0),
      PETSEG_FIELD(RunSpec, "layout", layout, false, data::oxford_pets_layout().name()),
      PETSEG_FIELD(RunSpec, "val_fraction", val_fraction, false),
      PETSEG_FIELD(RunSpec, "class_colors", class_colors, false),
      PETSEG_FIELD(RunSpec, "ignore_index", ignore_index, false),
      // Runs saved before --loss trained with unweighted cross-entropy, these fields' defaults.
      PETSEG_FIELD(RunSpec, "loss", loss, false),
      PETSEG_FIELD(RunSpec, "class_weights", class_weights, false),
  };
  return table;
}

const std::vector<Field<ExecOptions>>& exec_fields() {
  static const std::vector<Field<ExecOptions>> table = {
      PETSEG_FIELD(ExecOptions, "runs_dir", runs_dir),
      PETSEG_FIELD(ExecOptions, "name", name),
      PETSEG_FIELD(ExecOptions, "threads", threads),
      PETSEG_FIELD(ExecOptions, "device", device),
      PETSEG_FIELD(ExecOptions, "num_workers", loader.num_workers),
      PETSEG_FIELD(ExecOptions, "prefetch_factor", loader.prefetch_factor, false),
      PETSEG_FIELD(ExecOptions, "pin_memory", loader.pin_memory),
      PETSEG_FIELD(ExecOptions, "worker_nice", loader.worker_nice, false),
      PETSEG_FIELD(ExecOptions, "channels_last", channels_last),
      PETSEG_FIELD(ExecOptions, "torch_script", torch_script),
      PETSEG_FIELD(ExecOptions, "data_parallel", data_parallel, false),
      PETSEG_FIELD(ExecOptions, "cudnn_benchmark", cudnn_benchmark, false),
      PETSEG_FIELD(ExecOptions, "log_interval", log_interval),
      PETSEG_FIELD(ExecOptions, "profile", profile),
      PETSEG_FIELD(ExecOptions, "vis_samples", vis_samples),
      PETSEG_FIELD(ExecOptions, "stop_after", stop_after, false),
      PETSEG_FIELD(ExecOptions, "distributed", distributed, false),
      PETSEG_FIELD(ExecOptions, "backend", backend, false),
      PETSEG_FIELD(ExecOptions, "dist_timeout", dist_timeout, false),
      PETSEG_FIELD(ExecOptions, "mirror", mirror, false),
      PETSEG_FIELD(ExecOptions, "checkpoints", checkpoints, false),
      PETSEG_FIELD(ExecOptions, "tensorboard", tensorboard, false),
      PETSEG_FIELD(ExecOptions, "tensorboard_dir", tensorboard_dir, false),
  };
  return table;
}

#undef PETSEG_FIELD

template <class S>
json write(const std::vector<Field<S>>& table, const S& s) {
  json j = json::object();
  for (const Field<S>& f : table) j[f.key] = f.get(s);
  return j;
}

// `flat`: the object is a configuration from before the split, where newer optional keys are simply absent too.
template <class S>
S read(const std::vector<Field<S>>& table, const json& j, const char* part) {
  PETSEG_CHECK(j.is_object(), "the configuration's ", part, " is not a JSON object");
  S s;
  for (const Field<S>& f : table) {
    if (const json* value = find_key(j, f.key)) {
      f.set(s, *value);
    } else if (f.required) {
      PETSEG_FAIL("the configuration's ", part, " has no \"", f.key, "\"");
    } else if (!f.absent.is_null()) {
      f.set(s, f.absent);
    }
  }
  return s;
}

template <class S>
std::vector<std::string> keys_of(const std::vector<Field<S>>& table) {
  std::vector<std::string> keys;
  for (const Field<S>& f : table) keys.push_back(f.key);
  return keys;
}

bool same_path(const json& a, const json& b) {
  if (a == b) return true;
  std::error_code ec;
  const fs::path pa = a.get<std::string>(), pb = b.get<std::string>();
  return !pa.empty() && !pb.empty() && fs::equivalent(pa, pb, ec) && !ec;
}

}  // namespace

void to_json(json& j, const RunSpec& spec) { j = write(spec_fields(), spec); }

void from_json(const json& j, RunSpec& spec) { spec = read(spec_fields(), j, "spec"); }

void to_json(json& j, const TrainConfig& c) { j = {{"spec", c.spec}, {"exec", write(exec_fields(), c.exec)}}; }

void from_json(const json& j, TrainConfig& c) {
  PETSEG_CHECK(j.is_object(), "the configuration is not a JSON object");
  if (j.contains("spec")) {
    c.spec = j.at("spec").get<RunSpec>();
    c.exec = read(exec_fields(), j.value("exec", json::object()), "exec");
  } else {  // before the split: one flat object holding both parts' keys
    c.spec = read(spec_fields(), j, "spec");
    c.exec = read(exec_fields(), j, "exec");
  }
}

std::string spec_to_json(const RunSpec& spec) { return json(spec).dump(1); }

std::string to_json(const TrainConfig& c) { return json(c).dump(1); }

TrainConfig config_from_json(const std::string& text) {
  const json j = json::parse(text);
  check_json_numbers(j, "configuration");
  return j.get<TrainConfig>();
}

RunSpec spec_from_json(const std::string& text) {
  const json j = json::parse(text);
  check_json_numbers(j, "run spec");
  return j.get<RunSpec>();
}

std::string describe(const std::vector<SpecDifference>& differences, const std::string& here,
                     const std::string& there) {
  std::string out;
  for (const SpecDifference& d : differences) {
    out += (out.empty() ? "" : "; ") + option_for(d.key) + " is " + d.ours + " " + here + " and " + d.theirs + " " +
           there;
  }
  return out;
}

std::vector<std::string> spec_keys() { return keys_of(spec_fields()); }
std::vector<std::string> exec_keys() { return keys_of(exec_fields()); }

std::vector<SpecDifference> spec_differences(const RunSpec& ours, const RunSpec& theirs,
                                             const std::set<std::string>& keys) {
  std::vector<SpecDifference> out;
  for (const auto& f : spec_fields()) {
    if (!keys.empty() && !keys.count(f.key)) continue;
    const json a = f.get(ours), b = f.get(theirs);
    if (f.is_path ? same_path(a, b) : a == b) continue;
    out.push_back({f.key, a.dump(), b.dump()});
  }
  // --model's name holds the backbone: one difference, named once.
  const auto named = [&](const char* key) {
    return std::find_if(out.begin(), out.end(), [&](const SpecDifference& d) { return d.key == key; });
  };
  if (named("model") != out.end() && named("backbone") != out.end()) out.erase(named("backbone"));
  return out;
}

std::vector<std::string> exec_changes(const ExecOptions& before, const ExecOptions& now) {
  std::vector<std::string> out;
  for (const auto& f : exec_fields()) {
    const json a = f.get(before), b = f.get(now);
    if (a != b) out.push_back(std::string(f.key) + " " + a.dump() + " -> " + b.dump());
  }
  return out;
}

namespace {

// The execution options every rank must share: they decide which collectives run when.
const char* const kAgreedExec[] = {"log_interval", "stop_after", "profile", "backend"};

json agreed_part(const TrainConfig& c) {
  RunSpec spec = c.spec;
  spec.data.clear();
  spec.class_colors.clear();  // like the data folder, a path on this host (what it holds is checked after loading)
  json exec = json::object();
  const json all = write(exec_fields(), c.exec);
  for (const char* key : kAgreedExec) exec[key] = all.at(key);
  return {{"spec", write(spec_fields(), spec)}, {"exec", exec}};
}

}  // namespace

void check_ranks_agree(distributed::Communicator& comm, const TrainConfig& config) {
  const std::string here = "on rank " + std::to_string(comm.rank());
  const json mine = agreed_part(config);
  distributed::check_same_on_all_ranks(comm, "the run spec", mine.dump(), [&](const std::string& rank0_text) {
    const json rank0 = json::parse(rank0_text);
    RunSpec ours = config.spec;
    ours.data.clear();
    ours.class_colors.clear();
    std::string out =
        describe(spec_differences(ours, read(spec_fields(), rank0.at("spec"), "spec")), here, "on rank 0");
    for (const char* key : kAgreedExec) {
      if (mine["exec"][key] == rank0["exec"][key]) continue;
      out += (out.empty() ? "" : "; ") + option_for(key) + " is " + mine["exec"][key].dump() + " " + here + " and " +
             rank0["exec"][key].dump() + " on rank 0";
    }
    return out.empty() ? std::string("their options differ (paths naming the same folder?)") : out;
  });
}

void check_ranks_read_the_same_data(distributed::Communicator& comm, const data::SegmentationDataset& train,
                                    const data::SegmentationDataset& val, const std::vector<std::string>& class_names) {
  std::string names;
  for (const std::string& n : class_names) names += (names.empty() ? "" : ", ") + n;
  const std::string read = detail::str_cat("layout ", train.layout(), ", classes [", names, "], ", train.size(),
                                           " training and ", val.size(), " validation samples");
  distributed::check_same_on_all_ranks(comm, "the data set", read, [&](const std::string& rank0) {
    return detail::str_cat("it read ", train.root().string(), " as ", read, ", rank 0 as ", rank0,
                           " (the same data set on every host, prepared the same way?)");
  });
}

data::LoaderOptions loader_options(const RunSpec& spec, const data::WorkerOptions& workers, bool train, bool to_cuda) {
  data::LoaderOptions lo;
  static_cast<data::WorkerOptions&>(lo) = workers;
  lo.pin_memory = workers.pin_memory && to_cuda;  // pinning helps copies to a GPU only
  lo.batch_size = spec.batch_size;
  lo.image_size = spec.image_size;
  lo.train = train;
  lo.shuffle = train;
  lo.drop_last = train;  // BatchNorm cannot train on a batch of one
  lo.seed = spec.seed;
  lo.border = data::parse_border_mode(spec.border);
  // Training replaces a broken sample by another of the rank's shard, so every rank takes the same steps whatever
  // breaks where (a rank with fewer steps would hang or mismatch the others' collectives); evaluation leaves it out.
  lo.bad_samples = train ? data::BadSamplePolicy::kReplace : data::BadSamplePolicy::kSkip;
  return lo;
}

data::DatasetOptions dataset_options(const RunSpec& spec) {
  data::DatasetOptions o;
  o.layout = spec.layout;
  o.val_fraction = spec.val_fraction;
  o.seed = spec.seed;
  o.class_colors = spec.class_colors;
  o.border = data::parse_border_mode(spec.border);
  o.ignore_index = spec.ignore_index;
  return o;
}

void validate(const TrainConfig& config) {
  const RunSpec& s = config.spec;
  const ExecOptions& e = config.exec;
  PETSEG_CHECK(s.epochs >= 1, "--epochs must be >= 1, got ", s.epochs);
  PETSEG_CHECK(s.lr > 0, "--lr must be > 0, got ", s.lr);
  PETSEG_CHECK(s.batch_size >= 1 && s.image_size >= 16, "--batch-size must be >= 1 and --image-size >= 16, got ",
               s.batch_size, " and ", s.image_size);
  check_choice("--optimizer", s.optimizer, kOptimizerChoices);
  check_choice("--amp", s.amp, kAmpChoices);
  check_choice("--border", s.border, data::kBorderChoices);
  check_choice("--backbone", s.model.backbone, model::kBackboneChoices);
  model::model_info(s.model);  // a combination torchvision has
  check_choice("--layout", s.layout, data::layout_choices());
  PETSEG_CHECK(s.val_fraction >= 0 && s.val_fraction < 1, "--val-fraction must be in [0, 1), got ", s.val_fraction);
  PETSEG_CHECK(s.aux_lr_mult > 0, "--aux-lr-mult must be > 0, got ", s.aux_lr_mult);
  PETSEG_CHECK(s.ignore_index >= 0 && s.ignore_index <= 255, "--ignore-index must be in 0..255, got ", s.ignore_index);
  const LossKind loss = parse_loss_kind(s.loss);
  const bool weighted = parse_class_weights(s.class_weights).kind != ClassWeightsOption::Kind::kNone;
  PETSEG_CHECK(!weighted || loss == LossKind::kCrossEntropy || loss == LossKind::kCrossEntropyDice, "--class-weights ",
               s.class_weights, " weighs the cross-entropy term, and --loss ", s.loss,
               " has none: use --loss ce or ce+dice, or drop --class-weights");
  check_choice("--device", e.device, kDeviceChoices);
  check_choice("--backend", e.backend, distributed::kBackendChoices);
  PETSEG_CHECK(e.log_interval >= 1, "--log-interval must be >= 1");
  PETSEG_CHECK(e.loader.num_workers >= 0, "--num-workers must be >= 0, got ", e.loader.num_workers);
  PETSEG_CHECK(!(s.sync_bn && e.torch_script),
               "--sync-bn cannot be traced into TorchScript (its collectives run inside autograd); drop one of "
               "--sync-bn, --torch-script");
  PETSEG_CHECK(s.batch_size >= 2 || s.model.freeze_backbone, "--batch-size must be >= 2 to train BatchNorm layers");
}

}  // namespace petseg::train
