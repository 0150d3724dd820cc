// TrainConfig <-> JSON, and option validation.
#include "train/config.h"

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/json_check.h"

namespace petseg::train {

using json = nlohmann::json;

std::string to_json(const TrainConfig& c) {
  const json j = {{"data", c.data.string()},
                  {"runs_dir", c.runs_dir.string()},
                  {"name", c.name},
                  {"epochs", c.epochs},
                  {"batch_size", c.batch_size},
                  {"image_size", c.image_size},
                  {"lr", c.lr},
                  {"optimizer", c.optimizer},
                  {"momentum", c.momentum},
                  {"weight_decay", c.weight_decay},
                  {"warmup_iters", c.warmup_iters},
                  {"aux_weight", c.aux_weight},
                  {"border", c.border},
                  {"threads", c.threads},
                  {"seed", c.seed},
                  {"device", c.device},
                  {"amp", c.amp},
                  {"channels_last", c.channels_last},
                  {"num_workers", c.num_workers},
                  {"pin_memory", c.pin_memory},
                  {"torch_script", c.torch_script},
                  {"data_parallel", c.data_parallel},
                  {"sync_bn", c.sync_bn},
                  {"backbone", c.model.backbone},
                  {"num_classes", c.model.num_classes},
                  {"aux_loss", c.model.aux_loss},
                  {"weights", c.model.weights.string()},
                  {"backbone_weights", c.model.backbone_weights.string()},
                  {"freeze_backbone", c.model.freeze_backbone},
                  {"log_interval", c.log_interval},
                  {"profile_steps", c.profile_steps},
                  {"max_steps_per_epoch", c.max_steps_per_epoch},
                  {"eval_max_batches", c.eval_max_batches},
                  {"vis_samples", c.vis_samples},
                  {"stop_after_steps", c.stop_after_steps},
                  {"distributed", c.distributed},
                  {"backend", c.backend},
                  {"dist_timeout_s", c.dist_timeout_s}};
  return j.dump(1);
}

TrainConfig config_from_json(const std::string& text) {
  const json j = json::parse(text);
  check_json_numbers(j, "configuration");
  TrainConfig c;
  c.data = j.at("data").get<std::string>();
  c.runs_dir = j.at("runs_dir").get<std::string>();
  c.name = j.at("name").get<std::string>();
  c.epochs = j.at("epochs");
  c.batch_size = j.at("batch_size");
  c.image_size = j.at("image_size");
  c.lr = j.at("lr");
  c.optimizer = j.at("optimizer");
  c.momentum = j.at("momentum");
  c.weight_decay = j.at("weight_decay");
  c.warmup_iters = j.at("warmup_iters");
  c.aux_weight = j.at("aux_weight");
  c.border = j.at("border");
  c.threads = j.at("threads");
  c.seed = j.at("seed");
  c.device = j.at("device");
  c.amp = j.at("amp");
  c.channels_last = j.at("channels_last");
  c.num_workers = j.at("num_workers");
  c.pin_memory = j.at("pin_memory");
  c.torch_script = j.at("torch_script");
  c.data_parallel = j.value("data_parallel", false);
  c.sync_bn = j.value("sync_bn", false);
  c.model.backbone = j.at("backbone");
  c.model.num_classes = j.at("num_classes");
  c.model.aux_loss = j.at("aux_loss");
  c.model.weights = j.at("weights").get<std::string>();
  c.model.backbone_weights = j.at("backbone_weights").get<std::string>();
  c.model.freeze_backbone = j.at("freeze_backbone");
  c.log_interval = j.at("log_interval");
  c.profile_steps = j.at("profile_steps");
  c.max_steps_per_epoch = j.at("max_steps_per_epoch");
  c.eval_max_batches = j.at("eval_max_batches");
  c.vis_samples = j.at("vis_samples");
  c.stop_after_steps = j.value("stop_after_steps", int64_t(0));
  c.distributed = j.value("distributed", false);
  c.backend = j.value("backend", std::string("auto"));
  c.dist_timeout_s = j.value("dist_timeout_s", 300);
  return c;
}

void validate(const TrainConfig& c) {
  PETSEG_CHECK(c.epochs >= 1, "--epochs must be >= 1, got ", c.epochs);
  PETSEG_CHECK(c.lr > 0, "--lr must be > 0, got ", c.lr);
  PETSEG_CHECK(c.optimizer == "sgd" || c.optimizer == "adam", "unknown optimizer \"", c.optimizer,
               "\"; valid: sgd, adam");
  PETSEG_CHECK(c.amp == "off" || c.amp == "bf16" || c.amp == "fp16", "unknown --amp \"", c.amp,
               "\"; valid: off, bf16, fp16");
  PETSEG_CHECK(c.device == "auto" || c.device == "cpu" || c.device == "cuda", "unknown --device \"", c.device,
               "\"; valid: auto, cpu, cuda");
  PETSEG_CHECK(c.log_interval >= 1, "--log-interval must be >= 1");
  PETSEG_CHECK(!(c.sync_bn && c.torch_script),
               "--sync-bn cannot be traced into TorchScript (its collectives run inside autograd); drop one of "
               "--sync-bn, --torch-script");
  PETSEG_CHECK(c.batch_size >= 2 || c.model.freeze_backbone, "--batch-size must be >= 2 to train BatchNorm layers");
}

}  // namespace petseg::train
