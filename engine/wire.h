// engine/wire.h: the C++ side of engine/protocol.h: building frames, reading their fields, and moving
// whole frames over a socket.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/protocol.h"
#include "engine/status.h"

namespace pginfer::wire {

// Builds the body of one frame, field by field.
class FrameWriter {
 public:
  // A frame of message `type`.
  explicit FrameWriter(PgiMessage type) : type_(type) {}
  // Appends a field.
  FrameWriter& str(PgiField tag, std::string_view value);
  FrameWriter& i64(PgiField tag, int64_t value);
  FrameWriter& f64(PgiField tag, double value);
  FrameWriter& ids(PgiField tag, const std::vector<int32_t>& ids);
  // Appends a ROW field holding the body of `row` (its type is ignored).
  FrameWriter& row(const FrameWriter& row);
  // The whole frame, header included.
  std::string frame() const;

 private:
  FrameWriter& raw(PgiField tag, const void* data, size_t len);
  PgiMessage type_;
  std::string body_;
};

// The fields of a received frame, by tag (a repeated tag keeps every value in order).
class Fields {
 public:
  // Parses `body`; false when it is not a sequence of whole fields.
  bool parse(std::string_view body);
  // Whether the field is present.
  bool has(PgiField tag) const { return values_.count(tag) != 0; }
  // The first value of a field, or `fallback` when absent. Wrongly sized numbers are an error.
  std::string str(PgiField tag, const std::string& fallback = "") const;
  Status i64(PgiField tag, int64_t fallback, int64_t* out) const;
  Status f64(PgiField tag, double fallback, double* out) const;
  Status ids(PgiField tag, std::vector<int32_t>* out) const;
  // Every value of a repeated field.
  std::vector<std::string> all(PgiField tag) const;

 private:
  std::multimap<uint16_t, std::string> values_;
};

// A received frame.
struct Frame {
  uint8_t type = 0;
  std::string body;
};

// Reads one whole frame from socket `fd` (blocking). Errors: IoError when the peer closed the
// connection or the frame is malformed.
Status read_frame(int fd, Frame* out);

// Writes all of `bytes` to socket `fd` (blocking; no SIGPIPE). Errors: IoError when the peer is gone.
Status write_all(int fd, std::string_view bytes);

// The ERROR frame for a failed Status (with an optional hint).
std::string error_frame(const Status& st, std::string_view hint = "");

}  // namespace pginfer::wire
