// engine/wire.cpp: frames of engine/protocol.h in C++ and over sockets.
#include "engine/wire.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pginfer::wire {

FrameWriter& FrameWriter::raw(PgiField tag, const void* data, size_t len) {
  uint8_t header[PGI_FIELD_HEADER];
  pgi_put_field_header(header, (uint16_t)tag, (uint32_t)len);
  body_.append(reinterpret_cast<const char*>(header), sizeof header);
  body_.append(static_cast<const char*>(data), len);
  return *this;
}

FrameWriter& FrameWriter::str(PgiField tag, std::string_view value) { return raw(tag, value.data(), value.size()); }
FrameWriter& FrameWriter::i64(PgiField tag, int64_t value) { return raw(tag, &value, 8); }
FrameWriter& FrameWriter::f64(PgiField tag, double value) { return raw(tag, &value, 8); }
FrameWriter& FrameWriter::ids(PgiField tag, const std::vector<int32_t>& ids) {
  return raw(tag, ids.data(), ids.size() * sizeof(int32_t));
}
FrameWriter& FrameWriter::row(const FrameWriter& row) { return raw(PGI_F_ROW, row.body_.data(), row.body_.size()); }

std::string FrameWriter::frame() const {
  uint8_t header[PGI_FRAME_HEADER];
  pgi_put_frame_header(header, (uint8_t)type_, (uint32_t)body_.size());
  return std::string(reinterpret_cast<const char*>(header), sizeof header) + body_;
}

bool Fields::parse(std::string_view body) {
  values_.clear();
  PgiReader r;
  pgi_reader_init(&r, body.data(), body.size());
  uint16_t tag;
  const uint8_t* data;
  uint32_t len;
  while (pgi_next_field(&r, &tag, &data, &len)) values_.emplace(tag, std::string(reinterpret_cast<const char*>(data), len));
  return pgi_reader_ok(&r);
}

std::string Fields::str(PgiField tag, const std::string& fallback) const {
  auto it = values_.find(tag);
  return it == values_.end() ? fallback : it->second;
}

Status Fields::i64(PgiField tag, int64_t fallback, int64_t* out) const {
  auto it = values_.find(tag);
  if (it == values_.end()) {
    *out = fallback;
    return Status::ok_status();
  }
  if (!pgi_field_i64(reinterpret_cast<const uint8_t*>(it->second.data()), (uint32_t)it->second.size(), out)) {
    return invalid_argument("malformed integer field " + std::to_string(tag));
  }
  return Status::ok_status();
}

Status Fields::f64(PgiField tag, double fallback, double* out) const {
  auto it = values_.find(tag);
  if (it == values_.end()) {
    *out = fallback;
    return Status::ok_status();
  }
  if (!pgi_field_f64(reinterpret_cast<const uint8_t*>(it->second.data()), (uint32_t)it->second.size(), out)) {
    return invalid_argument("malformed number field " + std::to_string(tag));
  }
  return Status::ok_status();
}

Status Fields::ids(PgiField tag, std::vector<int32_t>* out) const {
  out->clear();
  auto it = values_.find(tag);
  if (it == values_.end()) return Status::ok_status();
  if (it->second.size() % sizeof(int32_t) != 0) return invalid_argument("malformed id array");
  out->resize(it->second.size() / sizeof(int32_t));
  std::memcpy(out->data(), it->second.data(), it->second.size());
  return Status::ok_status();
}

std::vector<std::string> Fields::all(PgiField tag) const {
  std::vector<std::string> out;
  auto [lo, hi] = values_.equal_range(tag);
  for (auto it = lo; it != hi; ++it) out.push_back(it->second);
  return out;
}

namespace {

// Reads exactly `len` bytes.
Status read_exact(int fd, char* dst, size_t len) {
  while (len > 0) {
    const ssize_t n = ::recv(fd, dst, len, 0);
    if (n > 0) {
      dst += n;
      len -= (size_t)n;
    } else if (n == 0) {
      return io_error("connection closed");
    } else if (errno != EINTR) {
      return io_error(std::string("receive failed: ") + std::strerror(errno));
    }
  }
  return Status::ok_status();
}

}  // namespace

Status read_frame(int fd, Frame* out) {
  char header[PGI_FRAME_HEADER];
  PGI_RETURN_IF_ERROR(read_exact(fd, header, sizeof header));
  uint32_t body_len = 0;
  if (!pgi_get_frame_header(reinterpret_cast<const uint8_t*>(header), &out->type, &body_len)) {
    return io_error("malformed frame header");
  }
  out->body.resize(body_len);
  return read_exact(fd, out->body.data(), body_len);
}

Status write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix((size_t)n);
    } else if (n < 0 && errno != EINTR) {
      return io_error(std::string("send failed: ") + std::strerror(errno));
    }
  }
  return Status::ok_status();
}

std::string error_frame(const Status& st, std::string_view hint) {
  int64_t code = PGI_ST_INTERNAL;
  switch (st.code()) {
    case StatusCode::InvalidArgument: code = PGI_ST_INVALID_ARGUMENT; break;
    case StatusCode::CorruptFile: code = PGI_ST_CORRUPT_FILE; break;
    case StatusCode::Unsupported: code = PGI_ST_UNSUPPORTED; break;
    case StatusCode::NotFound: code = PGI_ST_NOT_FOUND; break;
    case StatusCode::IoError: code = PGI_ST_IO_ERROR; break;
    case StatusCode::OutOfMemory: code = PGI_ST_OUT_OF_MEMORY; break;
    case StatusCode::PermissionDenied: code = PGI_ST_PERMISSION; break;
    case StatusCode::Busy: code = PGI_ST_BUSY; break;
    case StatusCode::NotReady: code = PGI_ST_NOT_READY; break;
    case StatusCode::Timeout: code = PGI_ST_TIMEOUT; break;
    case StatusCode::DeviceLost: code = PGI_ST_DEVICE_LOST; break;
    default: break;
  }
  FrameWriter w(PGI_MSG_ERROR);
  w.i64(PGI_F_CODE, code).str(PGI_F_MESSAGE, st.message());
  if (!hint.empty()) w.str(PGI_F_HINT, hint);
  return w.frame();
}

}  // namespace pginfer::wire
