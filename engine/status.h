// engine/status.h: the result of an engine operation that can fail: a code and a message.
//
// Engine entry points never throw across their boundary and never abort on bad input; they return a
// Status. The extension maps codes to SQLSTATEs in one table; the `infer` tool maps them to exit codes.
#pragma once

#include <string>
#include <utility>

namespace pginfer {

// What kind of failure, coarse enough to pick a SQLSTATE or an exit code.
enum class StatusCode {
  Ok = 0,
  InvalidArgument,  // the caller's input is wrong (bad option, token id out of range, prompt too long)
  CorruptFile,      // a model file is malformed or truncated
  Unsupported,      // well-formed but not something we run (architecture, tensor type)
  NotFound,         // a named file, tensor or key does not exist
  OutOfMemory,      // an allocation (KV cache, buffers) could not be made
  IoError,          // the operating system refused (open, mmap, write)
  Internal,         // a bug of ours: reported, never an abort
  PermissionDenied, // the caller may not do this (a model path outside the allowed folder)
  Busy,             // no room now (request queue full)
  NotReady,         // the object exists but cannot serve yet (a model still loading)
  Timeout,          // the request ran past its time limit
  DeviceLost,       // the compute device failed beyond repair (a GPU error): the engine process restarts
};

// A status code with a human-readable message (lowercase, no trailing period, names the file or item).
class Status {
 public:
  // Success.
  Status() = default;
  // A failure of `code` explained by `message`.
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  // Success, spelled out.
  static Status ok_status() { return Status(); }
  // True when the operation succeeded.
  bool ok() const { return code_ == StatusCode::Ok; }
  // The failure kind (Ok on success).
  StatusCode code() const { return code_; }
  // The explanation ("" on success).
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::Ok;
  std::string message_;
};

// Shorthands that build failures.
inline Status invalid_argument(std::string m) { return Status(StatusCode::InvalidArgument, std::move(m)); }
inline Status corrupt_file(std::string m) { return Status(StatusCode::CorruptFile, std::move(m)); }
inline Status unsupported(std::string m) { return Status(StatusCode::Unsupported, std::move(m)); }
inline Status not_found(std::string m) { return Status(StatusCode::NotFound, std::move(m)); }
inline Status io_error(std::string m) { return Status(StatusCode::IoError, std::move(m)); }
inline Status out_of_memory(std::string m) { return Status(StatusCode::OutOfMemory, std::move(m)); }
inline Status internal_error(std::string m) { return Status(StatusCode::Internal, std::move(m)); }
inline Status permission_denied(std::string m) { return Status(StatusCode::PermissionDenied, std::move(m)); }
inline Status busy(std::string m) { return Status(StatusCode::Busy, std::move(m)); }
inline Status not_ready(std::string m) { return Status(StatusCode::NotReady, std::move(m)); }
inline Status timeout(std::string m) { return Status(StatusCode::Timeout, std::move(m)); }
inline Status device_lost(std::string m) { return Status(StatusCode::DeviceLost, std::move(m)); }

// Returns from the enclosing function when `expr` (a Status) is a failure.
#define PGI_RETURN_IF_ERROR(expr)        \
  do {                                   \
    ::pginfer::Status _st = (expr);      \
    if (!_st.ok()) return _st;           \
  } while (0)

}  // namespace pginfer
