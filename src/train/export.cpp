// petseg export: which model (built or a checkpoint's), what it is called and trained on, and the writer per format.
#include "train/export.h"

#include <cstdio>
#include <filesystem>

#include "core/check.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/voc.h"
#include "image/image_io.h"
#include "model/onnx_export.h"
#include "model/torchscript.h"
#include "model/weights.h"
#include "report/epoch_record.h"
#include "train/checkpoint.h"
#include "model/named_model.h"

namespace petseg::train {
namespace {

namespace fs = std::filesystem;

struct ExportedModel {
  model::SegmentationModel model{nullptr};
  std::string name;                  // torchvision's builder name
  std::vector<std::string> classes;  // empty: unknown (the ONNX metadata then lists the class indices)
  int image_size = 0;
};

ExportedModel built_model(const ExportRequest& r) {
  model::ModelConfig config = r.model;
  PETSEG_CHECK(!r.aux || !model::model_info(config).aux_prefix.empty(), "--aux: the model has no aux head (",
               model::model_name(config), " has none in torchvision either)");
  config.aux_loss = config.aux_loss || r.aux;
  ExportedModel m;
  m.model = model::build_named_model(config, r.mirror).model;
  m.name = model::model_name(config);
  // torchvision's COCO files are trained on the 21 VOC classes; any other head is the user's, unnamed.
  if (!config.weights.empty() && config.num_classes == int64_t(data::voc_class_names().size()))
    m.classes = data::voc_class_names();
  m.image_size = r.image_size;
  return m;
}

ExportedModel checkpoint_model(const ExportRequest& r) {
  CheckpointInfo info;
  ExportedModel m;
  m.model = load_checkpoint_model(r.checkpoint, &info);
  m.name = model::model_name(info.config.spec.model);
  m.classes = checkpoint_class_names(r.checkpoint);
  if (int64_t(m.classes.size()) != m.model->num_classes()) m.classes.clear();
  m.image_size = info.config.spec.image_size;
  log_info("export: ", r.checkpoint.string(), " (", m.name, ", ", m.model->num_classes(), " classes, trained at ",
           m.image_size, " px, epoch ", info.state.epoch, ")");
  return m;
}

model::OnnxExportOptions onnx_options(const ExportRequest& r, const ExportedModel& m) {
  model::OnnxExportOptions o;
  o.opset = r.opset;
  o.static_shape.assign(r.static_shape.begin(), r.static_shape.end());
  o.aux = r.aux;
  o.fp16 = r.fp16;
  o.force = r.force;
  o.model_name = m.name;
  o.class_names = m.classes;
  o.mean = image::kImageNetMean;
  o.std = image::kImageNetStd;
  o.image_size = m.image_size;
  return o;
}

}  // namespace

std::vector<std::string> checkpoint_class_names(const fs::path& checkpoint) {
  const CheckpointInfo info = read_checkpoint_info(checkpoint);
  const std::vector<report::EpochRecord> history = report::history_from_json(info.state.history, checkpoint.string());
  return history.empty() ? std::vector<std::string>{} : history.back().class_names;
}

void run_export(const ExportRequest& r) {
  check_choice("--format", r.format, kExportFormats);
  check_output_file(r.out, r.force);
  ExportedModel m = r.checkpoint.empty() ? built_model(r) : checkpoint_model(r);
  m.model->eval();
  if (r.format == "torchscript") {
    model::export_torchscript(*m.model, r.out, model::ExportOptions{m.image_size, r.optimize});
  } else if (r.format == "state-dict") {
    model::save_state_dict(model::module_state_dict(*m.model), r.out);
  } else {
    model::export_onnx(*m.model, r.out, onnx_options(r, m));
  }
  char size[32];
  std::snprintf(size, sizeof size, "%.1f MB", double(fs::file_size(r.out)) / 1e6);
  log_info("wrote ", r.out.string(), " (", r.format, ", ", m.name, ", ", size, ")");
}

}  // namespace petseg::train
