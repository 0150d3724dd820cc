// Where the loader's time goes, per stage: JPEG decode (full and DCT-scaled), trimap decode, the fused
// transform, and a whole batch. Run: build/bench/bench_data
#include <benchmark/benchmark.h>

#include <filesystem>

#include "core/fs.h"
#include "core/random.h"
#include "data/loader.h"
#include "data/synth.h"
#include "image/image_io.h"

namespace {

using namespace petseg;
using namespace petseg::data;
using namespace petseg::image;

// A real synthetic sample (textured, 400x300) as the loader sees it.
struct Sample {
  std::vector<uint8_t> jpeg, png;
  Image rgb, trimap;
};

const Sample& sample() {
  static const Sample s = [] {
    const auto dir = std::filesystem::temp_directory_path() / "petseg_bench_data_sample";
    std::filesystem::remove_all(dir);
    SynthOptions o;
    o.out = dir;
    o.count = 1;
    o.min_side = 300;
    o.max_side = 400;
    synthesize(o);
    Sample x;
    const auto name = std::string(oxford_breeds()[0].name) + "_1";
    x.jpeg = read_file(image_path(dir, name));
    x.png = read_file(trimap_path(dir, name));
    x.rgb = decode_rgb(x.jpeg.data(), x.jpeg.size());
    x.trimap = decode_mask(x.png.data(), x.png.size());
    std::filesystem::remove_all(dir);
    return x;
  }();
  return s;
}

void BM_DecodeJpeg(benchmark::State& state) {
  const Sample& s = sample();
  for (auto _ : state) benchmark::DoNotOptimize(decode_rgb(s.jpeg.data(), s.jpeg.size()).pixels.data());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeJpeg);

// The decode the loader does when the sample is scaled down to half size or less.
void BM_DecodeJpegScaledHalf(benchmark::State& state) {
  const Sample& s = sample();
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        decode_rgb(s.jpeg.data(), s.jpeg.size(), nullptr, s.rgb.width / 2, s.rgb.height / 2).pixels.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeJpegScaledHalf);

void BM_DecodeTrimap(benchmark::State& state) {
  const Sample& s = sample();
  for (auto _ : state) benchmark::DoNotOptimize(decode_mask(s.png.data(), s.png.size()).pixels.data());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeTrimap);

// The fused scale + flip + crop + normalize + class mapping into a 256x256 batch slot, random geometry.
void BM_RenderSample(benchmark::State& state) {
  const Sample& s = sample();
  const int S = static_cast<int>(state.range(0));
  std::vector<float> image(3 * S * S);
  std::vector<int64_t> mask(S * S);
  uint64_t seed = 0;
  for (auto _ : state) {
    const Geometry g = train_geometry(s.rgb.width, s.rgb.height, S, seed++);
    render_sample(s.rgb, s.trimap, g, BorderMode::kClass, image.data(), mask.data());
    benchmark::DoNotOptimize(image.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RenderSample)->Arg(256)->Arg(520);

}  // namespace
