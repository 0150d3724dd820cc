// model/onnx_export: every registered model, exported with random weights that torchvision's own model then loads,
// runs in onnxruntime (tests/python/onnx_reference.py) as torchvision runs it: several sizes (non-square, batch 2),
// the aux output, float16, a static shape, opset 13, unfolded BatchNorm. The file holds what was asked (checked by
// Debian's ONNX library and by libtorch's bundled one, in one process), and bad requests are clear errors.
#define ONNX_NAMESPACE onnx_torch  // libtorch's bundled ONNX, as torch/csrc/jit/serialization/export.h names it
#include "model/onnx_export.h"

#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/nn/modules/activation.h>
#include <unistd.h>

#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/process.h"
#include "model/deeplabv3.h"
#include "model/weights.h"
#include "random_weights.h"
#include "test_util.h"

namespace petseg::model {
namespace {

namespace fs = std::filesystem;
using testing::error_of;
using Shape = std::vector<int64_t>;

OnnxExportOptions options_for(const std::string& model, bool aux) {
  OnnxExportOptions o;
  o.model_name = model;
  o.aux = aux;
  return o;
}

// One file to export from the model and the input shapes onnxruntime runs it at.
struct Variant {
  std::string tag;
  std::function<void(OnnxExportOptions&)> tweak;
  std::vector<Shape> shapes;
};

bool multi_size(const std::string& model) { return model.find("resnet101") == std::string::npos; }

std::vector<Variant> variants_for(const std::string& model) {
  const Shape batch2 = {2, 3, 67, 83};
  std::vector<Variant> v = {
      {"fp32", [](OnnxExportOptions&) {},
       multi_size(model) ? std::vector<Shape>{batch2, {1, 3, 64, 64}, {1, 3, 45, 97}} : std::vector<Shape>{batch2}}};
  if (multi_size(model)) v.push_back({"fp16", [](OnnxExportOptions& o) { o.fp16 = true; }, {{1, 3, 64, 64}}});
  if (model == "lraspp_mobilenet_v3_large") {
    v.push_back({"opset13", [](OnnxExportOptions& o) { o.opset = 13; }, {{1, 3, 64, 64}}});
    v.push_back({"unfolded", [](OnnxExportOptions& o) { o.fold_batchnorm = false; }, {{1, 3, 64, 64}}});
  }
  if (model == "deeplabv3_mobilenet_v3_large") {
    v.push_back({"static", [](OnnxExportOptions& o) { o.static_shape = {2, 72, 88}; }, {{2, 3, 72, 88}}});
  }
  return v;
}

std::string shapes_arg(const std::vector<Shape>& shapes) {
  std::string s;
  for (const Shape& shape : shapes) {
    s += s.empty() ? "" : ";";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  }
  return s;
}

// torchvision vs onnxruntime, one JSON line per file, shape and output.
std::vector<nlohmann::json> run_reference(const std::string& model, const fs::path& weights, bool aux,
                                          const std::vector<std::pair<fs::path, std::vector<Shape>>>& files) {
  std::vector<std::string> argv = {testing::python_with_torchvision(),
                                   std::string(PETSEG_SOURCE_DIR) + "/tests/python/onnx_reference.py",
                                   "--model",
                                   model,
                                   "--weights",
                                   weights.string()};
  if (aux) argv.push_back("--aux");
  for (const auto& [file, shapes] : files)
    argv.insert(argv.end(), {"--case", file.string() + ":" + shapes_arg(shapes)});
  const ProcessResult r = run_process(argv);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  std::vector<nlohmann::json> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '{') lines.push_back(nlohmann::json::parse(line));
  }
  return lines;
}

class OnnxEveryModel : public ::testing::TestWithParam<std::string> {};

TEST_P(OnnxEveryModel, RunsInOnnxruntimeAsTorchvisionRuns) {
  PETSEG_REQUIRE_ONNXRUNTIME();
  configure_threads(0);
  testing::TempDir dir;
  const std::string name = GetParam();
  SegmentationModel model = testing::random_model(name);
  const bool aux = model->has_aux();
  save_state_dict(module_state_dict(*model), dir / "weights.pth");
  std::vector<std::pair<fs::path, std::vector<Shape>>> files;
  std::map<std::string, std::string> tag_of;
  for (const Variant& v : variants_for(name)) {
    OnnxExportOptions o = options_for(name, aux);
    v.tweak(o);
    const fs::path file = dir / (v.tag + ".onnx");
    export_onnx(*model, file, o);
    files.push_back({file, v.shapes});
    tag_of[file.string()] = v.tag;
  }
  const std::vector<nlohmann::json> results = run_reference(name, dir / "weights.pth", aux, files);
  size_t expected = 0;
  for (const auto& [file, shapes] : files) expected += shapes.size() * (aux ? 2 : 1);
  ASSERT_EQ(results.size(), expected);
  for (const nlohmann::json& r : results) {
    const std::string tag = tag_of.at(r["file"].get<std::string>());
    const Shape in = r["shape"].get<Shape>();
    EXPECT_EQ(r["out_shape"].get<Shape>(), (Shape{in[0], 21, in[2], in[3]})) << tag << " " << r;
    const double max_abs = r["max_abs"].get<double>(), scale = r["scale"].get<double>();
    // fp32: within 1e-3 plus 1e-4 of the logits' largest magnitude; fp16: within 1e-2 of it.
    if (tag == "fp16") {
      EXPECT_LT(max_abs, 1e-2 * std::max(1.0, scale)) << r;
    } else {
      EXPECT_LT(max_abs, 1e-3 + 1e-4 * scale) << tag << " " << r;
    }
    std::cout << "[ onnx ] " << name << " " << tag << " " << shapes_arg({in}) << " " << r["output"].get<std::string>()
              << ": max abs difference " << max_abs << " (logits up to " << scale << ")\n";
  }
}

INSTANTIATE_TEST_SUITE_P(Models, OnnxEveryModel, ::testing::ValuesIn(kModelChoices),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

int count_convolutions(torch::nn::Module& module) {
  int n = 0;
  for (auto& m : module.modules()) n += m->as<torch::nn::Conv2dImpl>() != nullptr;
  return n;
}

TEST(OnnxExport, FileHoldsWhatWasAsked) {
  testing::TempDir dir;
  SegmentationModel model = testing::random_model("deeplabv3_mobilenet_v3_large");
  OnnxExportOptions o = options_for("deeplabv3_mobilenet_v3_large", /*aux=*/true);
  o.class_names = {
      "__background__", "aeroplane", "bicycle",     "bird", "boat",  "bottle",    "bus",    "car",         "cat",
      "chair",          "cow",       "diningtable", "dog",  "horse", "motorbike", "person", "pottedplant", "sheep",
      "sofa",           "train",     "tvmonitor"};
  o.image_size = 320;
  export_onnx(*model, dir / "m.onnx", o);
  const OnnxFileSummary s = read_onnx_file(dir / "m.onnx");  // checked again, as written
  EXPECT_EQ(s.opset, 17);
  EXPECT_EQ(s.producer, std::string("petseg ") + PETSEG_VERSION);
  ASSERT_EQ(s.inputs.size(), 1u);
  EXPECT_EQ(s.inputs[0].name, "input");
  EXPECT_EQ(s.inputs[0].type, OnnxType::kFloat);
  const std::vector<OnnxDim> dynamic = {{-1, "N"}, {3, ""}, {-1, "H"}, {-1, "W"}};
  EXPECT_EQ(s.inputs[0].dims, dynamic);
  ASSERT_EQ(s.outputs.size(), 2u);
  EXPECT_EQ(s.outputs[0].name, "out");
  EXPECT_EQ(s.outputs[1].name, "aux");
  const std::vector<OnnxDim> logits = {{-1, "N"}, {21, ""}, {-1, "H"}, {-1, "W"}};
  EXPECT_EQ(s.outputs[0].dims, logits);
  EXPECT_EQ(s.outputs[1].dims, logits);
  EXPECT_EQ(s.metadata.at("petseg.model"), "deeplabv3_mobilenet_v3_large");
  EXPECT_EQ(s.metadata.at("petseg.classes").substr(0, 32), "__background__,aeroplane,bicycle");
  EXPECT_EQ(s.metadata.at("petseg.mean"), "0.485,0.456,0.406");
  EXPECT_EQ(s.metadata.at("petseg.std"), "0.229,0.224,0.225");
  EXPECT_EQ(s.metadata.at("petseg.image_size"), "320");
  EXPECT_EQ(s.op_counts.count("BatchNormalization"), 0u) << "folded into the convolutions";
  EXPECT_EQ(s.op_counts.at("Conv"), count_convolutions(*model));
  EXPECT_GT(s.op_counts.at("HardSwish"), 0);
  EXPECT_EQ(s.op_counts.at("Resize"), 3) << "ASPP's pooling branch, out and aux to the input's size";
  EXPECT_EQ(s.op_counts.count("Dropout"), 0u) << "eval mode";
  EXPECT_EQ(s.initializer_types.count(OnnxType::kFloat16), 0u);

  o.aux = false;
  o.fp16 = true;
  o.static_shape = {1, 96, 128};
  o.class_names.clear();
  export_onnx(*model, dir / "half.onnx", o);
  const OnnxFileSummary half = read_onnx_file(dir / "half.onnx");
  ASSERT_EQ(half.outputs.size(), 1u) << "no aux unless asked: the aux head is not in the graph";
  EXPECT_LT(half.op_counts.at("Conv"), s.op_counts.at("Conv"));
  EXPECT_EQ(half.inputs[0].dims, (std::vector<OnnxDim>{{1, ""}, {3, ""}, {96, ""}, {128, ""}}));
  EXPECT_EQ(half.outputs[0].dims, (std::vector<OnnxDim>{{1, ""}, {21, ""}, {96, ""}, {128, ""}}));
  EXPECT_EQ(half.inputs[0].type, OnnxType::kFloat) << "float32 in and out";
  EXPECT_EQ(half.outputs[0].type, OnnxType::kFloat);
  EXPECT_EQ(half.initializer_types.count(OnnxType::kFloat), 0u) << "every weight in float16";
  EXPECT_GT(half.initializer_types.at(OnnxType::kFloat16), 0);
  EXPECT_EQ(half.metadata.at("petseg.classes").substr(0, 9), "0,1,2,3,4") << "no names given: the class indices";
  EXPECT_LT(double(fs::file_size(dir / "half.onnx")), 0.55 * double(fs::file_size(dir / "m.onnx")));
}

// libtorch bundles its own ONNX (namespace onnx_torch) and protobuf; Debian's libonnx and libprotobuf are loaded
// in the same process. Each side reads what the other wrote, and libtorch's checker accepts petseg's file.
TEST(OnnxExport, LibtorchsOwnOnnxCheckerAcceptsTheFile) {
  testing::TempDir dir;
  SegmentationModel model = testing::random_model("lraspp_mobilenet_v3_large");
  export_onnx(*model, dir / "m.onnx", options_for("lraspp_mobilenet_v3_large", false));
  const std::vector<uint8_t> bytes = read_file(dir / "m.onnx");
  EXPECT_NO_THROW(torch::jit::check_onnx_proto(std::string(bytes.begin(), bytes.end())));
  auto graph = std::make_shared<torch::jit::Graph>();
  torch::jit::Value* x = graph->addInput("x");
  x->setType(c10::TensorType::createContiguous(at::kFloat, at::kCPU, {2, 5}));
  torch::jit::Node* relu = graph->create(c10::Symbol::fromQualString("onnx::Relu"), {x});
  graph->insertNode(relu);
  relu->output()->setType(x->type());
  graph->registerOutput(relu->output());
  const auto exported = torch::jit::export_onnx(graph, {}, 17, {});
  const std::string theirs = torch::jit::serialize_model_proto_to_string(std::get<0>(exported));
  const OnnxFileSummary s = read_onnx_bytes(theirs, "libtorch's file");
  EXPECT_EQ(s.op_counts.at("Relu"), 1);
  EXPECT_EQ(s.inputs.at(0).dims, (std::vector<OnnxDim>{{2, ""}, {5, ""}}));
}

TEST(OnnxExport, BadRequestsAreClearErrors) {
  testing::TempDir dir;
  SegmentationModel model = testing::random_model("lraspp_mobilenet_v3_large");
  OnnxExportOptions o = options_for("lraspp_mobilenet_v3_large", false);
  const fs::path out = dir / "m.onnx";
  const std::string range = "this build writes ONNX opsets 13 to " + std::to_string(onnx_max_opset());
  o.opset = onnx_max_opset() + 1;
  EXPECT_EQ(error_of([&] { export_onnx(*model, out, o); }),
            "--opset " + std::to_string(o.opset) + ": " + range + " (the newest its ONNX library knows)");
  o.opset = 12;
  EXPECT_NE(error_of([&] { export_onnx(*model, out, o); }).find(range), std::string::npos);
  o.opset = 17;
  o.aux = true;
  EXPECT_EQ(error_of([&] { export_onnx(*model, out, o); }).rfind("--aux: the model has no aux head", 0), 0u);
  o.aux = false;
  o.static_shape = {1, 64};
  EXPECT_EQ(error_of([&] { export_onnx(*model, out, o); }), "--static takes N,H,W (3 sizes), got 2");
  o.static_shape = {1, 0, 64};
  EXPECT_EQ(error_of([&] { export_onnx(*model, out, o); }), "--static: sizes must be >= 1, got 0");
  o.static_shape.clear();
  EXPECT_FALSE(fs::exists(out)) << "no file after an error";

  export_onnx(*model, out, o);
  const uint64_t first = testing::file_hash(out);
  EXPECT_EQ(error_of([&] { export_onnx(*model, out, o); }),
            out.string() + " exists; refusing to overwrite it (--force does)");
  o.force = true;
  o.image_size = 256;
  export_onnx(*model, out, o);
  EXPECT_NE(testing::file_hash(out), first) << "--force overwrote it";

  write_file_atomic(dir / "file", std::string("x"));
  EXPECT_NE(error_of([&] {
              export_onnx(*model, dir / "file" / "m.onnx", o);
            }).find("the folder " + (dir / "file").string() + " cannot take it (Not a directory)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { export_onnx(*model, dir / "missing" / "m.onnx", o); }).find("No such file or directory"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { export_onnx(*model, dir.path(), o); }),
            "cannot write " + dir.path().string() + ": it is a folder");
  if (::geteuid() != 0) {
    fs::create_directories(dir / "ro");
    fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_NE(error_of([&] { export_onnx(*model, dir / "ro" / "m.onnx", o); }).find("Permission denied"),
              std::string::npos);
    fs::permissions(dir / "ro", fs::perms::owner_all);
  }
  for (const auto& e : fs::recursive_directory_iterator(dir.path())) {
    const std::string name = e.path().filename().string();
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << "left behind: " << e.path();
    EXPECT_EQ(name.find(".petseg-probe"), std::string::npos) << "left behind: " << e.path();
  }
}

// A layer kind without an emitter fails with the module's path and type, before any file is written.
TEST(OnnxExport, UnknownLayerNamesTheModule) {
  testing::TempDir dir;
  DeepLabV3 model(DeepLabV3Options{"mobilenet_v3_large", 3, false});
  model->eval();
  model->classifier->push_back(torch::nn::Hardtanh());
  EXPECT_EQ(error_of([&] {
              export_onnx(*model, dir / "m.onnx", options_for("deeplabv3_mobilenet_v3_large", false));
            }).rfind("graph export: no emitter for classifier.5 (torch::nn::HardtanhImpl)", 0),
            0u);
  EXPECT_FALSE(fs::exists(dir / "m.onnx"));
}

}  // namespace
}  // namespace petseg::model
