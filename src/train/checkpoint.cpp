// Checkpoint files are torch::serialize archives with a "petseg" marker, a JSON meta record, the model's tensors
// under "model/...", the optimizer's archive and the CPU generator state.
#include "train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/check.h"

namespace petseg::train {
namespace {

namespace fs = std::filesystem;
constexpr const char* kMarker = "petseg-checkpoint-v1";

void fsync_path(const fs::path& p, int flags) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

template <class Fn>
auto checked(const fs::path& path, Fn&& fn) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    PETSEG_FAIL(path.string(), ": not a readable petseg checkpoint (", what.substr(0, what.find('\n')),
                "); it may be truncated or corrupt");
  }
}

// A torch.save file (a zip with data.pkl but no TorchScript constants): someone's weights, not our checkpoint.
bool is_torch_save_zip(const fs::path& path) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(path.string());
    return reader.hasRecord("data.pkl") && !reader.hasRecord("constants.pkl");
  } catch (const c10::Error&) {
    return false;
  }
}

torch::serialize::InputArchive open_archive(const fs::path& path) {
  PETSEG_CHECK(fs::exists(path), "checkpoint ", path.string(), " does not exist");
  PETSEG_CHECK(!is_torch_save_zip(path), path.string(),
               ": not a petseg checkpoint (a torch.save file; for torchvision weights use --weights)");
  torch::serialize::InputArchive archive;
  checked(path, [&] {
    archive.load_from(path.string());
    return 0;
  });
  c10::IValue marker;
  const bool ok = checked(path, [&] { return archive.try_read("petseg", marker); });
  PETSEG_CHECK(ok && marker.isString() && marker.toStringRef() == kMarker, path.string(),
               ": not a petseg checkpoint (no petseg marker); for torchvision weights use --weights");
  return archive;
}

}  // namespace

void save_checkpoint(const fs::path& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                     const TrainState& state, const TrainConfig& config) {
  torch::serialize::OutputArchive archive;
  archive.write("petseg", c10::IValue(std::string(kMarker)));
  const nlohmann::json meta = {{"epoch", state.epoch},
                               {"epoch_step", state.epoch_step},
                               {"global_step", state.global_step},
                               {"best_miou", state.best_miou},
                               {"history", nlohmann::json::parse(state.history)},
                               {"config", nlohmann::json::parse(to_json(config))}};
  archive.write("meta", c10::IValue(meta.dump()));
  torch::serialize::OutputArchive model_archive;
  model.save(model_archive);
  archive.write("model", model_archive);
  torch::serialize::OutputArchive optimizer_archive;
  optimizer.save(optimizer_archive);
  archive.write("optimizer", optimizer_archive);
  {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    archive.write("rng", generator.get_state(), /*is_buffer=*/true);
  }

  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  PETSEG_CHECK(fd >= 0, "cannot create ", tmp.string(), ": ", errno_message(errno));
  int write_error = 0;
  try {
    archive.save_to([&](const void* data, size_t n) -> size_t {
      const auto* p = static_cast<const char*>(data);
      size_t left = n;
      while (left > 0 && !write_error) {
        const ssize_t w = ::write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          write_error = errno;
          break;
        }
        p += w;
        left -= size_t(w);
      }
      // Always "succeed": libtorch's zip writer throws from its destructor on a short write, which ends the
      // process. The error is remembered and reported once the archive is done.
      return n;
    });
  } catch (const c10::Error&) {
    if (!write_error) write_error = EIO;
  }
  if (!write_error && ::fsync(fd) != 0) write_error = errno;
  ::close(fd);
  if (write_error) {
    ::unlink(tmp.c_str());
    PETSEG_FAIL("cannot write checkpoint ", path.string(), ": ", errno_message(write_error),
                " (the previous checkpoint is intact)");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    PETSEG_FAIL("cannot rename ", tmp.string(), " to ", path.string(), ": ", errno_message(err));
  }
  fsync_path(path.parent_path().empty() ? fs::path(".") : path.parent_path(), O_RDONLY | O_DIRECTORY);
}

CheckpointInfo read_checkpoint_info(const fs::path& path) {
  torch::serialize::InputArchive archive = open_archive(path);
  c10::IValue meta;
  PETSEG_CHECK(checked(path, [&] { return archive.try_read("meta", meta); }) && meta.isString(), path.string(),
               ": checkpoint has no meta record");
  try {
    const auto j = nlohmann::json::parse(meta.toStringRef());
    CheckpointInfo info;
    info.config = config_from_json(j.at("config").dump());
    info.state.epoch = j.at("epoch");
    info.state.epoch_step = j.at("epoch_step");
    info.state.global_step = j.at("global_step");
    info.state.best_miou = j.at("best_miou");
    info.state.history = j.at("history").dump();
    return info;
  } catch (const nlohmann::json::exception& e) {
    PETSEG_FAIL(path.string(), ": checkpoint meta record is malformed (", e.what(), ")");
  }
}

void load_checkpoint(const fs::path& path, torch::nn::Module& model, torch::optim::Optimizer* optimizer) {
  torch::serialize::InputArchive archive = open_archive(path);
  checked(path, [&] {
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    model.load(model_archive);
    if (optimizer) {
      torch::serialize::InputArchive optimizer_archive;
      archive.read("optimizer", optimizer_archive);
      optimizer->load(optimizer_archive);
      at::Tensor rng;
      archive.read("rng", rng, /*is_buffer=*/true);
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(rng);
    }
    return 0;
  });
}

}  // namespace petseg::train
