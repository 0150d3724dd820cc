// ONNX files as Debian's ONNX library (libonnx 1.12) builds, checks and reads them, behind an interface that needs
// neither protobuf's nor libtorch's headers: the wheel's libtorch ships protobuf 3.13's headers, which would shadow
// the Debian protobuf that libonnx was generated with, so this part compiles without libtorch (as src/report's
// TensorBoard writer does) and model/onnx_export.h feeds it plain data.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace petseg::model {

// TensorProto::DataType's values.
enum class OnnxType : int32_t { kFloat = 1, kInt64 = 7, kFloat16 = 10 };

// A dimension of a graph input or output: a size, or a symbol that equal dimensions share ("N", "H").
struct OnnxDim {
  int64_t size = -1;
  std::string symbol;
  bool operator==(const OnnxDim& o) const { return size == o.size && symbol == o.symbol; }
};

struct OnnxAttribute {
  std::string name;
  std::variant<int64_t, float, std::string, std::vector<int64_t>> value;
};

// The opsets this build writes: from the first whose Resize takes optional inputs by empty name to the newest the
// ONNX library knows (17 for libonnx 1.12).
inline constexpr int64_t kOnnxMinOpset = 13;
int64_t onnx_max_opset();

// One graph in the default domain at one opset, built node by node.
class OnnxModelWriter {
 public:
  explicit OnnxModelWriter(int64_t opset);
  ~OnnxModelWriter();
  OnnxModelWriter(const OnnxModelWriter&) = delete;
  OnnxModelWriter& operator=(const OnnxModelWriter&) = delete;

  int64_t opset() const { return opset_; }
  void add_input(const std::string& name, OnnxType type, const std::vector<OnnxDim>& dims);
  void add_output(const std::string& name, OnnxType type, const std::vector<OnnxDim>& dims);
  // `data` holds the tensor's elements in row-major order, little-endian (what TensorProto's raw_data holds).
  void add_initializer(const std::string& name, OnnxType type, const std::vector<int64_t>& dims, const void* data,
                       size_t bytes);
  void add_node(const std::string& op_type, const std::string& name, const std::vector<std::string>& inputs,
                const std::vector<std::string>& outputs, const std::vector<OnnxAttribute>& attributes = {});
  void add_metadata(const std::string& key, const std::string& value);

  // Drops the nodes and initializers no output needs, checks the model as Python's
  // onnx.checker.check_model(full_check=True) does (the checker, then shape inference with type checks, strict, with
  // data propagation, so the declared output shapes must agree with the inferred ones), and returns the file's bytes.
  // A failed check is an error naming what the checker said.
  std::string serialize(const std::string& producer_name, const std::string& producer_version);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t opset_;
};

struct OnnxValueInfo {
  std::string name;
  OnnxType type = OnnxType::kFloat;
  std::vector<OnnxDim> dims;
};

// What an ONNX file holds, read back and checked as OnnxModelWriter::serialize checks.
struct OnnxFileSummary {
  int64_t ir_version = 0;
  int64_t opset = 0;  // of the default domain
  std::string producer;
  std::vector<OnnxValueInfo> inputs, outputs;
  std::map<std::string, std::string> metadata;
  std::map<std::string, int> op_counts;       // "Conv" -> 53
  std::map<OnnxType, int> initializer_types;  // initializers per element type
  int64_t parameters = 0;                     // elements of the float and float16 initializers
};
OnnxFileSummary read_onnx_file(const std::filesystem::path& path);
OnnxFileSummary read_onnx_bytes(const std::string& bytes, const std::string& name);

}  // namespace petseg::model
