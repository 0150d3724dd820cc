// The ONNX protobuf messages, checker and shape inference of Debian's libonnx; no libtorch header in this file.
#include "model/onnx_proto.h"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <exception>
#include <set>

#include "core/check.h"
#include "core/fs.h"

namespace petseg::model {
namespace {

void set_dims(onnx::ValueInfoProto* info, OnnxType type, const std::vector<OnnxDim>& dims) {
  onnx::TypeProto_Tensor* tensor = info->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(int32_t(type));
  onnx::TensorShapeProto* shape = tensor->mutable_shape();
  for (const OnnxDim& d : dims) {
    onnx::TensorShapeProto_Dimension* dim = shape->add_dim();
    if (d.symbol.empty()) {
      dim->set_dim_value(d.size);
    } else {
      dim->set_dim_param(d.symbol);
    }
  }
}

onnx::AttributeProto to_proto(const OnnxAttribute& a) {
  onnx::AttributeProto p;
  p.set_name(a.name);
  if (const auto* i = std::get_if<int64_t>(&a.value)) {
    p.set_type(onnx::AttributeProto::INT);
    p.set_i(*i);
  } else if (const auto* f = std::get_if<float>(&a.value)) {
    p.set_type(onnx::AttributeProto::FLOAT);
    p.set_f(*f);
  } else if (const auto* s = std::get_if<std::string>(&a.value)) {
    p.set_type(onnx::AttributeProto::STRING);
    p.set_s(*s);
  } else {
    p.set_type(onnx::AttributeProto::INTS);
    for (int64_t v : std::get<std::vector<int64_t>>(a.value)) p.add_ints(v);
  }
  return p;
}

// Keeps what the graph's outputs need: the nodes they depend on, in their order, and the initializers those read.
void prune(onnx::GraphProto& graph) {
  std::set<std::string> needed;
  for (const auto& output : graph.output()) needed.insert(output.name());
  std::vector<bool> keep(size_t(graph.node_size()), false);
  for (int i = graph.node_size() - 1; i >= 0; --i) {
    const onnx::NodeProto& node = graph.node(i);
    for (const auto& out : node.output()) keep[size_t(i)] = keep[size_t(i)] || needed.count(out) > 0;
    if (!keep[size_t(i)]) continue;
    for (const auto& in : node.input()) needed.insert(in);
  }
  google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
  for (int i = 0; i < graph.node_size(); ++i) {
    if (keep[size_t(i)]) nodes.Add()->Swap(graph.mutable_node(i));
  }
  graph.mutable_node()->Swap(&nodes);
  google::protobuf::RepeatedPtrField<onnx::TensorProto> initializers;
  for (auto& init : *graph.mutable_initializer()) {
    if (needed.count(init.name())) initializers.Add()->Swap(&init);
  }
  graph.mutable_initializer()->Swap(&initializers);
}

// onnx.checker.check_model(full_check=True): the checker, then strict shape inference with type checks and data
// propagation (which adds the inferred value_info to the model).
void check(onnx::ModelProto& model, const std::string& name) {
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    PETSEG_FAIL("ONNX checker: ", name, " is not a valid model: ", e.what());
  }
  try {
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type_val=*/true, /*strict_mode_val=*/1,
                                                                   /*data_prop_val=*/true));
  } catch (const std::exception& e) {
    PETSEG_FAIL("ONNX shape inference: ", name, ": ", e.what());
  }
}

OnnxValueInfo value_info(const onnx::ValueInfoProto& p) {
  OnnxValueInfo v;
  v.name = p.name();
  const auto& tensor = p.type().tensor_type();
  v.type = OnnxType(tensor.elem_type());
  for (const auto& d : tensor.shape().dim()) {
    OnnxDim dim;
    if (d.has_dim_value()) dim.size = d.dim_value();
    if (d.has_dim_param()) dim.symbol = d.dim_param();
    v.dims.push_back(dim);
  }
  return v;
}

int64_t elements(const onnx::TensorProto& t) {
  int64_t n = 1;
  for (int64_t d : t.dims()) n *= d;
  return n;
}

}  // namespace

int64_t onnx_max_opset() {
  return onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map().at(onnx::ONNX_DOMAIN).second;
}

struct OnnxModelWriter::Impl {
  onnx::ModelProto model;
};

OnnxModelWriter::OnnxModelWriter(int64_t opset) : impl_(std::make_unique<Impl>()), opset_(opset) {
  PETSEG_CHECK(opset >= kOnnxMinOpset && opset <= onnx_max_opset(), "--opset ", opset,
               ": this build writes ONNX opsets ", kOnnxMinOpset, " to ", onnx_max_opset(),
               " (the newest its ONNX library knows)");
  impl_->model.set_ir_version(onnx::IR_VERSION);
  onnx::OperatorSetIdProto* id = impl_->model.add_opset_import();
  id->set_domain("");
  id->set_version(opset);
}

OnnxModelWriter::~OnnxModelWriter() = default;

void OnnxModelWriter::add_input(const std::string& name, OnnxType type, const std::vector<OnnxDim>& dims) {
  onnx::ValueInfoProto* info = impl_->model.mutable_graph()->add_input();
  info->set_name(name);
  set_dims(info, type, dims);
}

void OnnxModelWriter::add_output(const std::string& name, OnnxType type, const std::vector<OnnxDim>& dims) {
  onnx::ValueInfoProto* info = impl_->model.mutable_graph()->add_output();
  info->set_name(name);
  set_dims(info, type, dims);
}

void OnnxModelWriter::add_initializer(const std::string& name, OnnxType type, const std::vector<int64_t>& dims,
                                      const void* data, size_t bytes) {
  onnx::TensorProto* t = impl_->model.mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(int32_t(type));
  for (int64_t d : dims) t->add_dims(d);
  t->set_raw_data(data, bytes);
}

void OnnxModelWriter::add_node(const std::string& op_type, const std::string& name,
                               const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
                               const std::vector<OnnxAttribute>& attributes) {
  onnx::NodeProto* node = impl_->model.mutable_graph()->add_node();
  node->set_op_type(op_type);
  node->set_name(name);
  for (const auto& in : inputs) node->add_input(in);
  for (const auto& out : outputs) node->add_output(out);
  for (const auto& a : attributes) *node->add_attribute() = to_proto(a);
}

void OnnxModelWriter::add_metadata(const std::string& key, const std::string& value) {
  onnx::StringStringEntryProto* entry = impl_->model.add_metadata_props();
  entry->set_key(key);
  entry->set_value(value);
}

std::string OnnxModelWriter::serialize(const std::string& producer_name, const std::string& producer_version) {
  onnx::ModelProto& model = impl_->model;
  model.set_producer_name(producer_name);
  model.set_producer_version(producer_version);
  model.mutable_graph()->set_name(producer_name);
  prune(*model.mutable_graph());
  check(model, "the exported graph");
  std::string bytes;
  PETSEG_CHECK(model.SerializeToString(&bytes), "ONNX: the model does not serialize (over protobuf's 2 GB?)");
  return bytes;
}

OnnxFileSummary read_onnx_bytes(const std::string& bytes, const std::string& name) {
  onnx::ModelProto model;
  PETSEG_CHECK(model.ParseFromString(bytes), name, " is not an ONNX model (no ModelProto parses from it)");
  check(model, name);
  OnnxFileSummary s;
  s.ir_version = model.ir_version();
  for (const auto& id : model.opset_import()) {
    if (id.domain().empty() || id.domain() == "ai.onnx") s.opset = id.version();
  }
  s.producer = model.producer_name() + " " + model.producer_version();
  for (const auto& p : model.graph().input()) s.inputs.push_back(value_info(p));
  for (const auto& p : model.graph().output()) s.outputs.push_back(value_info(p));
  for (const auto& m : model.metadata_props()) s.metadata[m.key()] = m.value();
  for (const auto& n : model.graph().node()) ++s.op_counts[n.op_type()];
  for (const auto& t : model.graph().initializer()) {
    ++s.initializer_types[OnnxType(t.data_type())];
    if (t.data_type() == int32_t(OnnxType::kFloat) || t.data_type() == int32_t(OnnxType::kFloat16))
      s.parameters += elements(t);
  }
  return s;
}

OnnxFileSummary read_onnx_file(const std::filesystem::path& path) {
  const std::vector<uint8_t> data = read_file(path);
  return read_onnx_bytes(std::string(data.begin(), data.end()), path.string());
}

}  // namespace petseg::model
