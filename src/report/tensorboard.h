// TensorBoard event files: scalars, PNG images and markdown text written as TensorBoard's own readers expect
// (TFRecord-framed `Event` protocol buffers), so `tensorboard --logdir RUN` shows a petseg run as it shows PyTorch's.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace petseg::image {
struct Image;
}

namespace petseg::tensorboard {

// One event file in `dir`, named events.out.tfevents.<unix time>.<hostname>.<pid>[.<suffix>] like TensorFlow's and
// PyTorch's writers, opening with the "brain.Event:2" file_version event.
//
// Logging must never stop a training: an unusable folder (cannot be created, is a file, not writable) or a failed
// write (full disk) logs ONE warning naming the folder and the error, and the writer becomes a no-op (`ok()` false);
// nothing here throws for I/O. Invalid arguments (an empty tag, non-positive image sizes) are caller bugs and throw
// petseg::Error. Events are buffered: they reach the file at `flush()` (call it at log intervals: TensorBoard reads
// files while they grow) and at destruction. Thread-safe.
//
// Resuming a run (what TensorBoard does with steps seen twice). TensorBoard reads a folder's event files in the order
// of their names, i.e. of their start times; a resumed run writes a new file into the same folder, and the steps
// between its checkpoint and where the old run stopped are then in both files. TensorBoard has three readers and each
// resolves this differently (read in tensorboard 2.21.0's backend/event_processing/ and, for the Rust data server, in
// tensorflow/tensorboard's tensorboard/data/server/{run,reservoir}.rs):
//  - the Rust data server (`--load_fast=auto`, the default where its binary exists): SessionLog is ignored; each
//    time series drops its points with step >= s when a point at step s arrives that does not increase the step
//    (so a tag the resumed run writes only later keeps its abandoned points until then).
//  - plugin_event_accumulator (the server's Python reader, `--load_fast=false`): once file_version >= 2 was read,
//    only a SessionLog START at step S purges, dropping every series' points with step >= S; the FIRST START of a run
//    counts as the run's beginning and purges nothing.
//  - event_accumulator.EventAccumulator (the legacy API scripts use): the same, except that every START purges,
//    and that it purges scalars, images, histograms and audio but not tensors (text).
// Hence: call `start_session(step)` at the start of every run, fresh or resumed, with the first step that run will
// write, before anything else. Then every series is one continuous curve in all three (text in the legacy API aside).
class EventWriter {
 public:
  // Creates `dir` (and its parents) and the event file. An unusable folder warns once and gives a no-op writer.
  explicit EventWriter(std::filesystem::path dir, std::string file_suffix = "");
  ~EventWriter();  // flushes and closes; failures warn, never throw
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // A SessionLog START at `step`: TensorBoard forgets what earlier files of this folder hold at steps >= `step`.
  void start_session(int64_t step);
  // TensorBoard stores scalars as float32: `value` is rounded to it.
  void add_scalar(const std::string& tag, double value, int64_t step);
  // `png` holds a whole PNG file of height x width pixels with `channels` 1 (gray), 2 (gray+alpha), 3 (RGB), 4 (RGBA).
  void add_image_png(const std::string& tag, const std::string& png, int height, int width, int64_t step,
                     int channels = 3);
  // Encodes `image` (8-bit, 1-4 channels) as PNG first.
  void add_image(const std::string& tag, const image::Image& image, int64_t step);
  // Markdown shown by TensorBoard's Text tab (a string tensor of shape [1] for the "text" plugin).
  void add_text(const std::string& tag, const std::string& markdown, int64_t step);

  void flush();
  // False once anything failed: nothing more is written.
  bool ok() const;
  // The event file; empty when the folder was unusable.
  std::filesystem::path path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace petseg::tensorboard
