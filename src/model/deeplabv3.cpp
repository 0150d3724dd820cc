// DeepLabV3's heads and the model; torchvision's models/segmentation/deeplabv3.py, module for module, and the
// registry's DeepLabV3 models.
#include "model/deeplabv3.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>

#include "model/eager_ops.h"
#include "model/fcn.h"
#include "model/registry.h"

namespace petseg::model {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t padding = 0, int64_t dilation = 1, bool bias = false) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).padding(padding).dilation(dilation).bias(bias));
}

nn::Sequential conv_bn_relu(int64_t in, int64_t out, int64_t k, int64_t padding = 0, int64_t dilation = 1) {
  return nn::Sequential(conv(in, out, k, padding, dilation), BatchNorm2d(out), nn::ReLU());
}

}  // namespace

nn::Sequential deeplab_head(int64_t in_channels, int64_t num_classes) {
  return nn::Sequential(ASPP(in_channels, std::vector<int64_t>{12, 24, 36}), conv(256, 256, 3, /*padding=*/1),
                        BatchNorm2d(256), nn::ReLU(), conv(256, num_classes, 1, 0, 1, /*bias=*/true));
}

ASPPPoolingImpl::ASPPPoolingImpl(int64_t in_channels, int64_t out_channels) {
  // torchvision's ASPPPooling is an nn.Sequential: its children are named 0..3.
  pool_ = register_module("0", nn::AdaptiveAvgPool2d(1));
  conv_ = register_module("1", conv(in_channels, out_channels, 1));
  bn_ = register_module("2", BatchNorm2d(out_channels));
  register_module("3", nn::ReLU());
}

template <class Ops>
typename Ops::Value ASPPPoolingImpl::run(Ops& ops, const typename Ops::Value& x) {
  return ops.upsample_like(ops.relu(ops.batch_norm(*bn_, ops.conv(*conv_, ops.adaptive_avg_pool(*pool_, x)))), x);
}

at::Tensor ASPPPoolingImpl::forward(const at::Tensor& x) {
  EagerOps ops;
  return run(ops, x);
}

std::string ASPPPoolingImpl::emit(GraphOps& ops, const std::string& x) { return run(ops, x); }

ASPPImpl::ASPPImpl(int64_t in_channels, std::vector<int64_t> rates, int64_t out_channels) {
  convs = register_module("convs", nn::ModuleList());
  convs->push_back(conv_bn_relu(in_channels, out_channels, 1));
  for (int64_t rate : rates) convs->push_back(conv_bn_relu(in_channels, out_channels, 3, rate, rate));
  convs->push_back(ASPPPooling(in_channels, out_channels));
  const int64_t branches = static_cast<int64_t>(convs->size());
  project = register_module("project", nn::Sequential(conv(branches * out_channels, out_channels, 1),
                                                      BatchNorm2d(out_channels), nn::ReLU(), nn::Dropout(0.5)));
}

template <class Ops>
typename Ops::Value ASPPImpl::run(Ops& ops, const typename Ops::Value& x) {
  std::vector<typename Ops::Value> branches;
  const size_t n = convs->size();
  for (size_t i = 0; i + 1 < n; ++i) branches.push_back(ops.sequential(*convs[i]->as<nn::Sequential>(), x));
  branches.push_back(ops.child(*convs[n - 1]->as<ASPPPooling>(), x));
  return ops.sequential(*project, ops.cat(branches, 1));
}

at::Tensor ASPPImpl::forward(const at::Tensor& x) {
  EagerOps ops;
  return run(ops, x);
}

std::string ASPPImpl::emit(GraphOps& ops, const std::string& x) { return run(ops, x); }

DeepLabV3Impl::DeepLabV3Impl(const DeepLabV3Options& options)
    : SimpleSegmentationModelImpl("DeepLabV3", options.num_classes) {
  const BackboneInfo& b = find_backbone(options.backbone);
  set_parts(b.build(), deeplab_head(b.out_channels, options.num_classes),
            options.aux_loss ? fcn_head(b.aux_channels, options.num_classes) : nn::Sequential(nullptr));
  // The backbone's registry name, for options(); the module itself does not know it.
  backbone_name_ = options.backbone;
}

DeepLabV3Options DeepLabV3Impl::options() const { return {backbone_name_, num_classes(), has_aux()}; }

// torchvision's deeplabv3_resnet50/101 and deeplabv3_mobilenet_v3_large (the last takes features.16 as "out" and
// the stride-8 features.4 as "aux", at output stride 16).
std::vector<ModelInfo> deeplabv3_models() {
  return simple_model_family("deeplabv3",
                             {{"resnet50", "deeplabv3_resnet50_coco-cd0a2569.pth"},
                              {"resnet101", "deeplabv3_resnet101_coco-586e9e4e.pth"},
                              {"mobilenet_v3_large", "deeplabv3_mobilenet_v3_large-fc3c493d.pth"}},
                             [](const std::string& backbone, int64_t num_classes, bool aux_loss) {
                               return SegmentationModel(DeepLabV3(DeepLabV3Options{backbone, num_classes, aux_loss}));
                             });
}

}  // namespace petseg::model
