// EpochRecord <-> JSON with the keys metrics.jsonl has always had, and those added since (absent: empty).
#include "report/epoch_record.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/json_check.h"

namespace petseg::report {
namespace {

using json = nlohmann::json;

json to_object(const EpochRecord& r) {
  return json{{"epoch", r.epoch},
              {"step", r.step},
              {"train_loss", r.train_loss},
              {"lr", r.lr},
              {"miou", r.miou},
              {"pixel_accuracy", r.pixel_accuracy},
              {"iou", r.iou},
              {"class_accuracy", r.class_accuracy},
              {"dice", r.dice},
              {"precision", r.precision},
              {"recall", r.recall},
              {"confusion_matrix", r.confusion},
              {"class_names", r.class_names},
              {"images_per_s", r.images_per_s},
              {"ranks", r.ranks},
              {"loss_scale", r.loss_scale},
              {"skipped_steps", r.skipped_steps},
              {"seconds", r.seconds},
              {"times",
               {{"data", r.times.data},
                {"h2d", r.times.h2d},
                {"forward", r.times.forward},
                {"backward", r.times.backward},
                {"optimizer", r.times.optimizer},
                {"eval", r.times.eval},
                {"launch_times", r.times.launch_times}}}};
}

// NaN is written as null by nlohmann: read it back as NaN.
double number(const json& j, const char* key, double fallback) {
  if (!j.contains(key)) return fallback;
  return j[key].is_null() ? NAN : j[key].get<double>();
}

std::vector<double> numbers(const json& j, const char* key) {
  std::vector<double> out;
  if (!j.contains(key)) return out;
  for (const auto& v : j[key]) out.push_back(v.is_null() ? NAN : v.get<double>());
  return out;
}

EpochRecord from_object(const json& j) {
  EpochRecord r;
  r.epoch = j.value("epoch", int64_t(0));
  r.step = j.value("step", int64_t(0));
  r.train_loss = number(j, "train_loss", NAN);
  r.lr = number(j, "lr", 0);
  r.miou = number(j, "miou", NAN);
  r.pixel_accuracy = number(j, "pixel_accuracy", NAN);
  r.iou = numbers(j, "iou");
  r.class_accuracy = numbers(j, "class_accuracy");
  r.dice = numbers(j, "dice");
  r.precision = numbers(j, "precision");
  r.recall = numbers(j, "recall");
  r.confusion = j.value("confusion_matrix", std::vector<std::vector<int64_t>>{});
  r.class_names = j.value("class_names", std::vector<std::string>{});
  r.images_per_s = number(j, "images_per_s", 0);
  r.ranks = j.value("ranks", 1);
  r.seconds = number(j, "seconds", 0);
  r.loss_scale = number(j, "loss_scale", 0);
  r.skipped_steps = j.value("skipped_steps", int64_t(0));
  if (j.contains("times")) {
    const json& t = j["times"];
    r.times = {number(t, "data", 0),      number(t, "h2d", 0),  number(t, "forward", 0),       number(t, "backward", 0),
               number(t, "optimizer", 0), number(t, "eval", 0), t.value("launch_times", false)};
  }
  return r;
}

}  // namespace

void to_json(json& j, const EpochRecord& record) { j = to_object(record); }

void from_json(const json& j, EpochRecord& record) { record = from_object(j); }

std::string to_json_line(const EpochRecord& record) { return json(record).dump(); }

EpochRecord epoch_record_from_json(const std::string& line, const std::string& where) {
  try {
    const json j = json::parse(line);
    check_json_numbers(j, where);
    PETSEG_CHECK(j.is_object(), "not an object");
    return j.get<EpochRecord>();
  } catch (const std::exception& e) {
    PETSEG_FAIL(where, ": malformed epoch record (", e.what(), ")");
  }
}

std::string history_to_json(const std::vector<EpochRecord>& history) {
  return json(history).dump();
}

std::vector<EpochRecord> history_from_json(const std::string& text, const std::string& where) {
  std::vector<EpochRecord> out;
  try {
    const json a = json::parse(text);
    check_json_numbers(a, where);
    PETSEG_CHECK(a.is_array(), "not an array");
    out = a.get<std::vector<EpochRecord>>();
  } catch (const std::exception& e) {
    PETSEG_FAIL(where, ": malformed training history (", e.what(), ")");
  }
  return out;
}

}  // namespace petseg::report
