// TensorBoard event files, written without TensorFlow or protobuf: a run's scalars and texts
// go to runs/NAME/tb/events.out.tfevents.<seconds>.<host>.<pid>, readable by stock TensorBoard
// (`tensorboard --logdir runs/NAME`, or a sweep folder to see its runs side by side).
//
// The file is a TFRecord stream; each record is
//   uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
// (little-endian; masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8), and each data is a
// tensorboard.Event message (tensorboard/compat/proto/event.proto), hand-encoded:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; SummaryMetadata metadata = 9; TensorProto tensor = 8; }
//   SummaryMetadata { PluginData plugin_data = 1; }  PluginData { string plugin_name = 1; }
//   TensorProto { DataType dtype = 1 (DT_STRING = 7); TensorShapeProto tensor_shape = 2; repeated bytes string_val = 8; }
// The subset is spelled out in tests/fixtures/tensorboard_event.proto, which the test decodes
// the bytes with (protoc --decode).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace mnemo::experiments {

namespace tensorboard {
uint32_t crc32c(const std::string& bytes);                 // Castagnoli, as TFRecord uses it
uint32_t masked_crc32c(const std::string& bytes);
std::string record(const std::string& data);               // one TFRecord around `data`
// Event messages (the bytes a record holds).
std::string file_version_event(double wall_time);          // the first event: "brain.Event:2"
std::string scalar_event(double wall_time, int64_t step, const std::string& tag, float value);
std::string text_event(double wall_time, int64_t step, const std::string& tag, const std::string& text);
}  // namespace tensorboard

// One event file in `dir` (created), flushed after every event so that a running TensorBoard
// sees the run as it goes. A resumed run opens a new file; TensorBoard reads a folder's files
// together.
class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;
  void scalar(int64_t step, const std::string& tag, double value);
  void text(int64_t step, const std::string& tag, const std::string& text);
  const std::string& path() const { return path_; }

 private:
  void write(const std::string& event);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace mnemo::experiments
