// Checkpoint files are torch.save-format zips (readable by Python's torch.load) holding one flat state dict:
// "petseg" (the format marker) and "meta" (JSON: state, history, config) as byte tensors, "model/<name>" for
// every parameter and buffer, "optimizer/<i>/<field>" for the optimizer's per-parameter state, "rng" (the CPU
// generator) and "rng_cuda/<d>" (each CUDA device's generator: dropout on a GPU draws from it, as
// torch.cuda.get_rng_state_all keeps them). They are read back with the same safe reader as foreign weight files: a
// hostile checkpoint cannot run code or allocate more than its own size.
#include "train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/cuda.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <cmath>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/fs.h"
#include "core/json_check.h"
#include "core/log.h"
#include "model/weights.h"

namespace petseg::train {
namespace {

namespace fs = std::filesystem;
constexpr const char* kMarker = "petseg-checkpoint-v2";

at::Tensor bytes_tensor(const std::string& s) {
  return at::from_blob(const_cast<char*>(s.data()), {int64_t(s.size())}, at::kByte).clone();
}

std::string tensor_string(const at::Tensor& t, const std::string& what, const std::string& name) {
  PETSEG_CHECK(t.scalar_type() == at::kByte && t.dim() == 1, name, ": checkpoint record \"", what,
               "\" is not a byte string");
  const at::Tensor c = t.contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), size_t(c.numel()));
}

// libtorch keys optimizer state by the parameter's TensorImpl, as its own optimizers do.
void* state_key(const at::Tensor& p) { return p.unsafeGetTensorImpl(); }

std::vector<at::Tensor> optimizer_params(torch::optim::Optimizer& optimizer) {
  std::vector<at::Tensor> params;
  for (auto& group : optimizer.param_groups()) {
    for (auto& p : group.params()) params.push_back(p);
  }
  return params;
}

void add_optimizer_state(torch::optim::Optimizer& optimizer, model::StateDict& out) {
  const auto params = optimizer_params(optimizer);
  auto& state = optimizer.state();
  for (size_t i = 0; i < params.size(); ++i) {
    const auto it = state.find(state_key(params[i]));
    if (it == state.end()) continue;
    const std::string prefix = "optimizer/" + std::to_string(i) + "/";
    if (auto* sgd = dynamic_cast<torch::optim::SGDParamState*>(it->second.get())) {
      if (sgd->momentum_buffer().defined()) out.emplace_back(prefix + "momentum_buffer", sgd->momentum_buffer());
    } else if (auto* adam = dynamic_cast<torch::optim::AdamParamState*>(it->second.get())) {
      out.emplace_back(prefix + "step", at::scalar_tensor(int64_t(adam->step()), at::kLong));
      out.emplace_back(prefix + "exp_avg", adam->exp_avg());
      out.emplace_back(prefix + "exp_avg_sq", adam->exp_avg_sq());
      if (adam->max_exp_avg_sq().defined()) out.emplace_back(prefix + "max_exp_avg_sq", adam->max_exp_avg_sq());
    } else {
      PETSEG_FAIL("checkpoint: optimizer state of an unsupported kind (only SGD and Adam)");
    }
  }
}

// Every CUDA device's default generator (none without CUDA), through the device-generic context (no CUDA headers).
void add_cuda_generators(model::StateDict& out) {
  const int64_t devices = torch::cuda::is_available() ? int64_t(torch::cuda::device_count()) : 0;
  for (int64_t d = 0; d < devices; ++d) {
    at::Generator generator = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, c10::DeviceIndex(d)));
    std::lock_guard<std::mutex> lock(generator.mutex());
    out.emplace_back("rng_cuda/" + std::to_string(d), generator.get_state());
  }
}

// Parsed but not yet applied: what read_checkpoint_info and load_checkpoint share.
struct Parsed {
  std::map<std::string, at::Tensor> records;
  model::StateDict state;  // in file order
  std::string name;
};

Parsed parse(const uint8_t* data, size_t size, const std::string& name) {
  Parsed p;
  p.name = name;
  try {
    p.state = model::read_state_dict(data, size, name);
  } catch (const Error& e) {
    // The petseg format before v2 was a TorchScript archive; say so rather than "not a torch.save file".
    PETSEG_CHECK(!model::zip_has_record(data, size, "constants.pkl"), name,
                 ": a TorchScript archive (a petseg checkpoint from before format v2, or an exported model), which "
                 "this version does not read as a checkpoint");
    PETSEG_FAIL(name, ": not a readable petseg checkpoint (", e.what(), "); it may be truncated or corrupt");
  }
  for (const auto& [k, v] : p.state) p.records[k] = v;
  const auto marker = p.records.find("petseg");
  PETSEG_CHECK(marker != p.records.end() && tensor_string(marker->second, "petseg", name) == kMarker, name,
               ": not a petseg checkpoint (a torch.save file of ", p.state.size(),
               " tensors without petseg's marker); for torchvision weights use --weights");
  return p;
}

CheckpointInfo info_of(const Parsed& p) {
  const auto meta = p.records.find("meta");
  PETSEG_CHECK(meta != p.records.end(), p.name, ": checkpoint has no meta record");
  try {
    const auto j = nlohmann::json::parse(tensor_string(meta->second, "meta", p.name));
    check_json_numbers(j, p.name + " (meta record)");
    CheckpointInfo info;
    info.config = j.at("config").get<TrainConfig>();
    info.state.epoch = j.at("epoch");
    info.state.epoch_step = j.at("epoch_step");
    info.state.global_step = j.at("global_step");
    info.state.best_miou = j.at("best_miou");
    info.state.history = j.at("history").dump();
    info.state.loss_scale = j.value("loss_scale", 0.0);  // absent before fp16 loss scaling existed
    info.state.loss_scale_growth_tracker = j.value("loss_scale_growth_tracker", int64_t(0));
    info.state.class_weights = j.value("class_weights", std::vector<double>{});  // absent before --class-weights
    PETSEG_CHECK(info.state.epoch >= 0 && info.state.epoch_step >= 0 && info.state.global_step >= 0 &&
                     info.state.loss_scale >= 0 && info.state.loss_scale_growth_tracker >= 0,
                 p.name, ": checkpoint meta record has negative counters");
    for (double w : info.state.class_weights) {
      PETSEG_CHECK(std::isfinite(w) && w >= 0, p.name, ": checkpoint holds a class weight of ", w);
    }
    return info;
  } catch (const nlohmann::json::exception& e) {
    PETSEG_FAIL(p.name, ": checkpoint meta record is malformed (", e.what(), ")");
  }
}

at::Tensor record(const Parsed& p, const std::string& key, const at::Tensor& like) {
  const auto it = p.records.find(key);
  PETSEG_CHECK(it != p.records.end(), p.name, ": checkpoint lacks \"", key, "\"");
  PETSEG_CHECK(it->second.sizes() == like.sizes() && it->second.scalar_type() == like.scalar_type(), p.name,
               ": checkpoint record \"", key, "\" has shape ", it->second.sizes(), " ", it->second.scalar_type(),
               ", expected ", like.sizes(), " ", like.scalar_type());
  return it->second.to(like.device());
}

// The saved CUDA generators onto the devices this machine has; a checkpoint from a machine with more GPUs (or
// from a CUDA run resumed on the CPU) restores what fits, and says so.
// `rank_device` >= 0: this process is a rank of a distributed run driving CUDA device `rank_device`; rank 0 saved its
// own device (0) only as a rank's stream, and every rank draws the same numbers from the same seed (equal shapes every
// step), so that state is this rank's: it goes onto `rank_device`.
void restore_cuda_generators(const Parsed& p, int rank_device) {
  const int64_t devices = torch::cuda::is_available() ? int64_t(torch::cuda::device_count()) : 0;
  int64_t saved = 0;
  for (const auto& [key, value] : p.records) {
    if (key.rfind("rng_cuda/", 0) != 0) continue;
    ++saved;
    const std::string index = key.substr(9);
    PETSEG_CHECK(!index.empty() && index.size() < 4 && index.find_first_not_of("0123456789") == std::string::npos &&
                     value.scalar_type() == at::kByte,
                 p.name, ": checkpoint record \"", key, "\" is not a CUDA generator state");
    int64_t d = std::stoll(index);
    if (rank_device >= 0) {
      if (d != 0) continue;
      d = rank_device;
    }
    if (d >= devices) continue;
    at::Generator generator = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, c10::DeviceIndex(d)));
    std::lock_guard<std::mutex> lock(generator.mutex());
    try {
      generator.set_state(value.contiguous());
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      PETSEG_FAIL(p.name, ": checkpoint's CUDA generator state ", d, " is invalid (", what.substr(0, what.find('\n')),
                  ")");
    }
  }
  if (rank_device < 0 && saved > devices) {
    warn_once("rng_cuda", detail::str_cat(p.name, " holds the random generators of ", saved,
                                          " CUDA device(s), this "
                                          "machine has ",
                                          devices, ": dropout draws differ from the uninterrupted run"));
  }
}

void apply(const Parsed& p, torch::nn::Module& model, torch::optim::Optimizer* optimizer, int rank_device = -1) {
  model::LoadPolicy policy;
  policy.source_prefix = "model/";
  model::load_state_dict(model, p.state, policy, p.name);
  if (!optimizer) return;
  const auto params = optimizer_params(*optimizer);
  auto& state = optimizer->state();
  const bool adam = dynamic_cast<torch::optim::Adam*>(optimizer) != nullptr;
  PETSEG_CHECK(adam || dynamic_cast<torch::optim::SGD*>(optimizer), "checkpoint: only SGD and Adam state is saved");
  const std::string last_prefix = "optimizer/" + std::to_string(params.size()) + "/";
  for (const auto& [k, v] : p.state) {
    if (k.rfind("optimizer/", 0) != 0) continue;
    const size_t slash = k.find('/', 10);
    const std::string index = k.substr(10, slash == std::string::npos ? std::string::npos : slash - 10);
    PETSEG_CHECK(!index.empty() && index.size() < 10 && index.find_first_not_of("0123456789") == std::string::npos &&
                     std::stoul(index) < params.size(),
                 p.name, ": checkpoint holds optimizer state \"", k, "\" for a parameter the model does not have");
  }
  torch::NoGradGuard no_grad;
  state.clear();
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string prefix = "optimizer/" + std::to_string(i) + "/";
    const at::Tensor& param = params[i];
    if (adam) {
      if (!p.records.count(prefix + "step")) continue;
      auto s = std::make_unique<torch::optim::AdamParamState>();
      const at::Tensor step = record(p, prefix + "step", at::scalar_tensor(int64_t(0), at::kLong));
      PETSEG_CHECK(step.item<int64_t>() >= 0, p.name, ": checkpoint has a negative Adam step");
      s->step(step.item<int64_t>());
      s->exp_avg(record(p, prefix + "exp_avg", param.detach()).clone());
      s->exp_avg_sq(record(p, prefix + "exp_avg_sq", param.detach()).clone());
      if (p.records.count(prefix + "max_exp_avg_sq")) {
        s->max_exp_avg_sq(record(p, prefix + "max_exp_avg_sq", param.detach()).clone());
      }
      state[state_key(param)] = std::move(s);
    } else {
      if (!p.records.count(prefix + "momentum_buffer")) continue;
      auto s = std::make_unique<torch::optim::SGDParamState>();
      s->momentum_buffer(record(p, prefix + "momentum_buffer", param.detach()).clone());
      state[state_key(param)] = std::move(s);
    }
  }
  restore_cuda_generators(p, rank_device);
  const auto rng = p.records.find("rng");
  PETSEG_CHECK(rng != p.records.end() && rng->second.scalar_type() == at::kByte, p.name,
               ": checkpoint has no random generator state");
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  try {
    generator.set_state(rng->second.contiguous());
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    PETSEG_FAIL(p.name, ": checkpoint's random generator state is invalid (", what.substr(0, what.find('\n')), ")");
  }
}

}  // namespace

void save_checkpoint(const fs::path& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                     const TrainState& state, const TrainConfig& config) {
  const nlohmann::json meta = {{"epoch", state.epoch},
                               {"epoch_step", state.epoch_step},
                               {"global_step", state.global_step},
                               {"best_miou", state.best_miou},
                               {"loss_scale", state.loss_scale},
                               {"loss_scale_growth_tracker", state.loss_scale_growth_tracker},
                               {"class_weights", state.class_weights},
                               {"history", nlohmann::json::parse(state.history)},
                               {"config", config}};
  model::StateDict records;
  records.emplace_back("petseg", bytes_tensor(kMarker));
  records.emplace_back("meta", bytes_tensor(meta.dump()));
  for (auto& [k, v] : model::module_state_dict(model)) records.emplace_back("model/" + k, v);
  add_optimizer_state(optimizer, records);
  {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    records.emplace_back("rng", generator.get_state());
  }
  add_cuda_generators(records);

  write_file_atomic(
      path,
      [&](const ByteSink& sink) {
        model::write_state_dict(records, [&](const void* data, size_t n) {
          sink(data, n);
          return n;
        });
      },
      "checkpoint");
}

CheckpointInfo read_checkpoint_info(const uint8_t* data, size_t size, const std::string& name) {
  return info_of(parse(data, size, name));
}

CheckpointInfo read_checkpoint_info(const fs::path& path) {
  PETSEG_CHECK(fs::exists(path), "checkpoint ", path.string(), " does not exist");
  const std::vector<uint8_t> bytes = read_file(path);
  return read_checkpoint_info(bytes.data(), bytes.size(), path.string());
}

void load_checkpoint(const uint8_t* data, size_t size, const std::string& name, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer) {
  const Parsed p = parse(data, size, name);
  info_of(p);  // a checkpoint whose meta record is broken is refused whole
  apply(p, model, optimizer);
}

model::SegmentationModel load_checkpoint_model(const fs::path& path, CheckpointInfo* info) {
  PETSEG_CHECK(fs::exists(path), "checkpoint ", path.string(), " does not exist");
  const std::vector<uint8_t> bytes = read_file(path);
  const Parsed p = parse(bytes.data(), bytes.size(), path.string());
  const CheckpointInfo read = info_of(p);
  model::SegmentationModel net = model::build_segmentation_architecture(read.config.spec.model);
  apply(p, *net, nullptr);
  if (info) *info = read;
  return net;
}

void load_checkpoint(const fs::path& path, torch::nn::Module& model, torch::optim::Optimizer* optimizer,
                     int rank_device) {
  PETSEG_CHECK(fs::exists(path), "checkpoint ", path.string(), " does not exist");
  const std::vector<uint8_t> bytes = read_file(path);
  const Parsed p = parse(bytes.data(), bytes.size(), path.string());
  info_of(p);  // a checkpoint whose meta record is broken is refused whole
  apply(p, model, optimizer, rank_device);
}

}  // namespace petseg::train
