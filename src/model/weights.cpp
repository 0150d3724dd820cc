// The loading policy of weight files: which keys go where, what a transfer-learning shape change may skip, and what
// a missing, unexpected or mis-shaped key is (an error naming it and the file); and the model's own state dict.
#include "model/weights.h"

#include <torch/csrc/autograd/grad_mode.h>

#include <map>
#include <set>
#include <sstream>

#include "core/check.h"
#include "core/fs.h"

namespace petseg::model {
namespace {

bool has_prefix(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << "]";
  return os.str();
}

}  // namespace

StateDict module_state_dict(const torch::nn::Module& module) {
  StateDict out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value());
  return out;
}

LoadReport load_state_dict(torch::nn::Module& module, const StateDict& state, const LoadPolicy& policy,
                           const std::string& file_name) {
  std::map<std::string, at::Tensor> targets;
  for (const auto& p : module.named_parameters(true)) targets.emplace(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) targets.emplace(b.key(), b.value());
  LoadReport report;
  std::set<std::string> seen;
  torch::NoGradGuard no_grad;
  for (const auto& [file_key, tensor] : state) {
    bool ignored = false;
    for (const auto& p : policy.ignore) ignored = ignored || has_prefix(file_key, p);
    if (ignored) {
      report.ignored.push_back(file_key);
      continue;
    }
    if (!has_prefix(file_key, policy.source_prefix)) continue;
    const std::string key = policy.target_prefix + file_key.substr(policy.source_prefix.size());
    auto it = targets.find(key);
    PETSEG_CHECK(it != targets.end(), file_name, ": unexpected key \"", file_key,
                 "\" (the model has no such parameter or buffer)");
    seen.insert(key);
    if (it->second.sizes() != tensor.sizes()) {
      bool skippable = false;
      for (const auto& p : policy.skip_on_shape_mismatch) skippable = skippable || has_prefix(key, p);
      PETSEG_CHECK(skippable, file_name, ": \"", file_key, "\" has shape ", shape_str(tensor.sizes()),
                   ", the model's is ", shape_str(it->second.sizes()));
      report.skipped.push_back(key + ": file " + shape_str(tensor.sizes()) + ", model " +
                               shape_str(it->second.sizes()));
      continue;
    }
    it->second.copy_(tensor);
    ++report.loaded;
  }
  for (const auto& [key, t] : targets) {
    if (seen.count(key)) continue;
    if (policy.partial && !has_prefix(key, policy.target_prefix)) continue;
    PETSEG_FAIL(file_name, ": missing key \"", key.substr(policy.target_prefix.size()), "\" (the model needs it)");
  }
  return report;
}

void save_state_dict(const StateDict& state, const std::filesystem::path& path) {
  write_file_atomic(path, [&](const ByteSink& sink) {
    write_state_dict(state, [&](const void* data, size_t n) {
      sink(data, n);
      return n;
    });
  });
}

}  // namespace petseg::model
