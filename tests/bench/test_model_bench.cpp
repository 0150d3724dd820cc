// bench model's plan and results: the variant grammar (folded, freeze, bf16w/fp16w, ort) and which side runs what,
// read the same way by bench/python/model_bench.py; the cases each option leaves; the results JSON's keys and the
// table's bests; and ONNX Runtime's failure path (an interpreter without onnxruntime: noted on the row, the other
// rows measured). No timing is asserted: figures live in the benchmark's own runs.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/model_bench.h"
#include "bench/model_bench_plan.h"
#include "core/process.h"
#include "test_util.h"

namespace petseg::bench {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::error_of;

TEST(VariantGrammar, NamesEachVariantCanonically) {
  EXPECT_EQ(parse_variant("fp32").name(), "fp32");
  EXPECT_EQ(parse_variant("cl_fp32").name(), "cl");
  EXPECT_EQ(parse_variant("folded_fp32").name(), "folded");
  EXPECT_EQ(parse_variant("bf16w_cl_folded").name(), "folded_cl_bf16w");
  EXPECT_EQ(parse_variant("bf16_cl_freeze_compile").name(), "compile_freeze_cl_bf16");
  EXPECT_EQ(parse_variant("compile_freeze").name(), "compile_freeze");
  EXPECT_EQ(parse_variant("ort").name(), "ort");
  EXPECT_EQ(parse_variant("ort_fp16w").name(), "ort_fp16w");
  EXPECT_EQ(parse_variant("torchscript_tf32").name(), "torchscript_tf32");

  const Variant v = parse_variant("compile_freeze_cl_bf16");
  EXPECT_EQ(v.mode, "compile");
  EXPECT_TRUE(v.freeze);
  EXPECT_TRUE(v.channels_last);
  EXPECT_EQ(v.precision, "bf16");
  EXPECT_TRUE(v.autocast());
  EXPECT_FALSE(v.cast_weights());
  EXPECT_TRUE(parse_variant("folded_bf16w").cast_weights());
  EXPECT_FALSE(parse_variant("folded_bf16w").autocast());
}

TEST(VariantGrammar, SaysWhichSideRunsEachVariant) {
  struct Expect {
    const char* variant;
    bool petseg, python, ort, inference_only;
  };
  for (const Expect& e :
       {Expect{"fp32", true, true, false, false}, Expect{"cl_bf16", true, true, false, false},
        Expect{"torchscript", true, true, false, false}, Expect{"bf16w", true, true, false, true},
        Expect{"folded_cl_bf16w", true, false, false, true}, Expect{"fused_cl_bf16w", true, false, false, true},
        Expect{"fused", true, false, false, true}, Expect{"compile_cl_bf16", false, true, false, false},
        Expect{"compile_freeze_cl_bf16", false, true, false, true}, Expect{"ort", false, false, true, true}}) {
    const Variant v = parse_variant(e.variant);
    EXPECT_EQ(v.runs_in_petseg(), e.petseg) << e.variant;
    EXPECT_EQ(v.runs_in_python(), e.python) << e.variant;
    EXPECT_EQ(v.onnx_runtime(), e.ort) << e.variant;
    EXPECT_EQ(v.inference_only(), e.inference_only) << e.variant;
  }
}

TEST(VariantGrammar, RefusesWhatNoSideCanRun) {
  const std::string freeze = error_of([] { parse_variant("freeze_cl_bf16"); });
  EXPECT_NE(freeze.find("freeze is Inductor's freezing, a mode of torch.compile"), std::string::npos) << freeze;
  EXPECT_NE(error_of([] { parse_variant("torchscript_bf16"); }).find("TorchScript variants run in fp32 or tf32"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_variant("ort_cl"); }).find("ONNX Runtime runs petseg's ONNX export in fp32"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_variant("ort_bf16"); }).find("ort_fp16w"), std::string::npos);
  EXPECT_NE(error_of([] { parse_variant("fused_cl_bf16"); }).find("fused is petseg's CPU inference model"),
            std::string::npos);
  ModelBenchOptions fused_on_gpu;
  fused_on_gpu.variants = "fused_cl_bf16w";
  EXPECT_NE(error_of([&] { chosen_cases(fused_on_gpu, /*cuda=*/true); }).find("on CUDA the folded rows"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_variant("compile_folded"); }).find("names two modes (compile, folded)"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_variant("bf16_fp16w"); }).find("names two precisions (bf16, fp16w)"),
            std::string::npos);
  const std::string unknown = error_of([] { parse_variant("cl_int8"); });
  EXPECT_NE(unknown.find("unknown variant \"cl_int8\" (token \"int8\")"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("[torchscript_|compile_[freeze_]|folded_|fused_|ort_][cl_](fp32|tf32|bf16|fp16|bf16w|fp16w)"),
            std::string::npos)
      << unknown;
}

std::vector<std::string> variants_of(const std::vector<Case>& cases, const std::string& kind) {
  for (const Case& c : cases) {
    if (c.kind == kind) return c.variants;
  }
  return {};
}

bool has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

TEST(ChosenCases, TheCpuDefaultsHaveTheFusedModelFreezingAndOnnxRuntime) {
  const std::vector<Case> cases = chosen_cases(ModelBenchOptions{}, /*cuda=*/false);
  const std::vector<std::string> infer = variants_of(cases, "infer");
  for (const char* v : {"fp32", "bf16", "cl_bf16", "torchscript", "folded", "fused", "fused_cl_bf16w", "ort", "compile",
                        "compile_freeze", "compile_freeze_cl_bf16"}) {
    EXPECT_TRUE(has(infer, v)) << v;
  }
  for (const std::string& v : variants_of(cases, "train")) EXPECT_FALSE(parse_variant(v).inference_only()) << v;
}

TEST(ChosenCases, OneVariantListServesTrainAndInferCases) {
  ModelBenchOptions o;
  o.cases = "infer:2:64,train:2:64";
  o.variants = "fp32,folded_cl_bf16w,compile_freeze_cl_bf16,compile_cl_bf16,ort,cl_fp32,cl";
  const std::vector<Case> cases = chosen_cases(o, /*cuda=*/false);
  ASSERT_EQ(cases.size(), 2u);
  EXPECT_EQ(join(cases[0].variants), "fp32,folded_cl_bf16w,compile_freeze_cl_bf16,compile_cl_bf16,ort,cl");
  EXPECT_EQ(join(cases[1].variants), "fp32,compile_cl_bf16,cl");  // inference-only variants left out of train

  o.variants = "folded,ort";
  EXPECT_NE(error_of([&] { chosen_cases(o, false); }).find("no variant of \"folded,ort\" applies to train b2 64x64"),
            std::string::npos);
}

TEST(ChosenCases, WithoutPythonNeitherTorchCompileNorOnnxRuntime) {
  ModelBenchOptions o;
  o.cases = "infer:2:64";
  o.variants = "fp32,folded,compile_freeze,ort";
  o.compile = false;
  EXPECT_EQ(join(chosen_cases(o, false)[0].variants), "fp32,folded,ort");
  o.compile = true;
  o.python = false;
  EXPECT_EQ(join(chosen_cases(o, false)[0].variants), "fp32,folded");
}

// The Python reference reads every variant as petseg does: the same canonical name, the same fields, the same
// refusals.
TEST(VariantGrammar, ModelBenchPyReadsItTheSameWay) {
  PETSEG_REQUIRE_PYTHON();
  const std::vector<std::string> names = {"fp32",
                                          "cl_fp32",
                                          "bf16",
                                          "fp16",
                                          "tf32",
                                          "cl_bf16",
                                          "bf16w",
                                          "cl_fp16w",
                                          "torchscript",
                                          "torchscript_tf32",
                                          "compile",
                                          "compile_cl",
                                          "compile_cl_bf16",
                                          "compile_freeze",
                                          "bf16_cl_freeze_compile",
                                          "compile_freeze_cl_bf16w",
                                          "folded",
                                          "folded_bf16w",
                                          "bf16w_cl_folded",
                                          "ort",
                                          "ort_fp16w",
                                          "freeze",  // refused from here on
                                          "torchscript_bf16",
                                          "ort_cl",
                                          "ort_bf16",
                                          "compile_folded",
                                          "bf16_fp16w",
                                          "cl_int8"};
  const ProcessResult r = run_process({testing::python_with_torchvision(),
                                       (fs::path(PETSEG_SOURCE_DIR) / "bench/python/model_bench.py").string(),
                                       "--parse-variants", join(names)});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::istringstream lines(r.out);
  size_t i = 0;
  for (std::string line; std::getline(lines, line); ++i) {
    ASSERT_LT(i, names.size());
    const json py = json::parse(line);
    ASSERT_EQ(py.at("variant"), names[i]);
    std::string cpp_error;
    Variant v;
    try {
      v = parse_variant(names[i]);
    } catch (const std::exception& e) {
      cpp_error = e.what();
    }
    ASSERT_EQ(py.contains("error"), !cpp_error.empty()) << names[i] << ": Python " << line << ", petseg " << cpp_error;
    if (!cpp_error.empty()) continue;
    EXPECT_EQ(py.at("name"), v.name()) << names[i];
    EXPECT_EQ(py.at("mode"), v.mode) << names[i];
    EXPECT_EQ(py.at("freeze"), v.freeze) << names[i];
    EXPECT_EQ(py.at("cl"), v.channels_last) << names[i];
    EXPECT_EQ(py.at("precision"), v.precision) << names[i];
    EXPECT_EQ(py.at("inference_only"), v.inference_only()) << names[i];
  }
  EXPECT_EQ(i, names.size());
}

ModelBenchRow row(const std::string& variant, std::optional<double> petseg, std::optional<double> python,
                  std::optional<double> ort) {
  ModelBenchRow r;
  r.case_name = "infer b2 64x64", r.kind = "infer", r.batch = 2, r.size = 64, r.variant = variant;
  r.flops_per_image = 1e9;
  r.petseg_seconds = petseg, r.python_seconds = python, r.ort_seconds = ort;
  return r;
}

ModelBenchResult measured_result() {
  ModelBenchResult result;
  result.model = "lraspp_mobilenet_v3_large";
  result.device = "cpu";
  result.environment = R"({"cpu_model": "a CPU", "cores": 2})";
  result.threads = 2, result.warmup = 1, result.repeats = 3;
  result.onnxruntime_version = "1.24.4";
  result.rows = {row("fp32", 1.0, 1.2, std::nullopt), row("folded_cl_bf16w", 0.5, std::nullopt, std::nullopt),
                 row("compile_freeze_cl_bf16", std::nullopt, 0.6, std::nullopt),
                 row("ort", std::nullopt, std::nullopt, 0.8)};
  result.rows[3].ort_warmup_seconds = 0.9;
  result.rows[3].ort_session_seconds = 0.1;
  result.complete = true;
  return result;
}

TEST(ModelBenchJson, EveryRowNamesEachSidesBestAndTheCasesCompareBestAgainstBest) {
  const json doc = json::parse(model_bench_json(measured_result()));
  ASSERT_EQ(doc.at("rows").size(), 4u);
  for (const json& r : doc.at("rows")) {
    EXPECT_EQ(r.at("case_best").at("petseg"), "folded_cl_bf16w") << r.dump();
    EXPECT_EQ(r.at("case_best").at("python"), "compile_freeze_cl_bf16") << r.dump();
    EXPECT_EQ(r.at("case_best").at("ort"), "ort") << r.dump();
  }
  const json& ort = doc.at("rows")[3];
  EXPECT_DOUBLE_EQ(ort.at("ort_seconds").get<double>(), 0.8);
  EXPECT_DOUBLE_EQ(ort.at("ort_images_per_s").get<double>(), 2 / 0.8);
  EXPECT_DOUBLE_EQ(ort.at("ort_warmup_seconds").get<double>(), 0.9);
  EXPECT_DOUBLE_EQ(ort.at("ort_session_seconds").get<double>(), 0.1);
  EXPECT_FALSE(ort.contains("petseg_seconds"));
  EXPECT_DOUBLE_EQ(doc.at("rows")[0].at("petseg_over_python").get<double>(), 1.2);

  ASSERT_EQ(doc.at("cases").size(), 1u);
  const json& c = doc.at("cases")[0];
  EXPECT_EQ(c.at("case"), "infer b2 64x64");
  EXPECT_EQ(c.at("petseg_best").at("variant"), "folded_cl_bf16w");
  EXPECT_DOUBLE_EQ(c.at("petseg_best").at("seconds").get<double>(), 0.5);
  EXPECT_EQ(c.at("python_best").at("variant"), "compile_freeze_cl_bf16");
  EXPECT_EQ(c.at("ort_best").at("variant"), "ort");
  EXPECT_DOUBLE_EQ(c.at("petseg_over_python").get<double>(), 0.6 / 0.5);
  EXPECT_DOUBLE_EQ(c.at("petseg_over_ort").get<double>(), 0.8 / 0.5);
  EXPECT_EQ(doc.at("onnxruntime").at("version"), "1.24.4");
  EXPECT_EQ(doc.at("onnxruntime").at("provider"), "CPUExecutionProvider");
  EXPECT_TRUE(doc.contains("variant_grammar"));
}

TEST(ModelBenchJson, ASideWithNoMeasuredRowHasNoBest) {
  ModelBenchResult result = measured_result();
  result.rows.resize(2);  // no Python-only and no ONNX Runtime row
  result.rows[0].python_seconds.reset();
  const json doc = json::parse(model_bench_json(result));
  EXPECT_TRUE(doc.at("rows")[0].at("case_best").at("python").is_null());
  EXPECT_TRUE(doc.at("cases")[0].at("ort_best").is_null());
  EXPECT_FALSE(doc.at("cases")[0].contains("petseg_over_python"));
  EXPECT_FALSE(doc.at("cases")[0].contains("petseg_over_ort"));
}

TEST(ModelBenchTable, SaysEachSidesBestAndTheRatios) {
  const std::string table = format_model_bench(measured_result());
  EXPECT_NE(table.find("onnxrt"), std::string::npos) << table;
  EXPECT_NE(table.find("0.500*"), std::string::npos) << table;  // petseg's best, marked
  EXPECT_NE(table.find("0.600*"), std::string::npos) << table;
  EXPECT_NE(table.find("0.800*"), std::string::npos) << table;
  EXPECT_NE(table.find("best: petseg folded_cl_bf16w 0.500 s | Python compile_freeze_cl_bf16 0.600 s | ONNX Runtime "
                       "ort 0.800 s"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("petseg best vs Python best (torch.compile included): 1.20x -> met (target >= 1.0x)"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("petseg best vs ONNX Runtime: 1.60x"), std::string::npos) << table;
  EXPECT_NE(table.find("onnxruntime 1.24.4"), std::string::npos) << table;
}

// An interpreter that runs model_bench.py (answering for fp32) but has no onnxruntime: the ort row says why and
// stays unmeasured; petseg's and Python's rows are measured.
TEST(ModelBenchRun, AnInterpreterWithoutOnnxRuntimeIsNotedOnTheOrtRowOnly) {
  testing::TempDir dir;
  const fs::path python = dir / "python";
  {
    std::ofstream out(python);
    out << "#!/bin/sh\n"
           "case \"$1\" in\n"
           "  *ort_bench.py) echo \"ort_bench.py: No module named 'onnxruntime'\" >&2; exit 3 ;;\n"
           "  *model_bench.py) echo '{\"variant\": \"fp32\", \"seconds\": 0.25, \"first_step_seconds\": 0.3, "
           "\"warmup_seconds\": 0.3}'; echo '{\"done\": true}' ;;\n"
           "  *) exit 1 ;;\n"
           "esac\n";
  }
  fs::permissions(python, fs::perms::owner_all);
  ModelBenchOptions o;
  o.model = "lraspp_mobilenet_v3_large";
  o.threads = 1;
  o.warmup = 0;
  o.repeats = 1;
  o.cases = "infer:1:32";
  o.variants = "fp32,ort,ort_fp16w";
  o.python_exe = python.string();
  o.json_out = dir / "model.json";
  const ModelBenchResult result = run_model_bench(o);
  ASSERT_EQ(result.rows.size(), 3u);
  EXPECT_TRUE(result.complete);
  EXPECT_TRUE(result.rows[0].petseg_seconds.has_value());
  ASSERT_TRUE(result.rows[0].python_seconds.has_value());
  EXPECT_DOUBLE_EQ(*result.rows[0].python_seconds, 0.25);
  EXPECT_TRUE(result.rows[0].note.empty()) << result.rows[0].note;
  for (size_t i : {1u, 2u}) {
    const ModelBenchRow& ort = result.rows[i];
    EXPECT_FALSE(ort.ort_seconds.has_value());
    EXPECT_NE(ort.note.find("ONNX Runtime not run"), std::string::npos) << ort.note;
    EXPECT_NE(ort.note.find("cannot run ort_bench.py (ort_bench.py: No module named 'onnxruntime'"), std::string::npos)
        << ort.note;
  }
  std::ifstream in(o.json_out);
  const json doc = json::parse(in);
  EXPECT_NE(doc.at("rows")[1].at("note").get<std::string>().find("onnxruntime"), std::string::npos);
  EXPECT_TRUE(doc.at("onnxruntime").at("version").is_null());
}

}  // namespace
}  // namespace petseg::bench
