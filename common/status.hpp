// Status and StatusOr: how errors cross module boundaries (RocksDB style).
#pragma once

#include <cassert>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace flotilla::common {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kNotFound,
    kInvalidArgument,     // the caller's input is wrong (bad plan, bad id, ...)
    kFailedPrecondition,  // the request is fine but not now (e.g. approve a finished deployment)
    kAlreadyExists,
    kIoError,      // disk, socket, process spawn
    kCorruption,   // stored or received bytes do not decode
    kUnavailable,  // a peer or resource is gone for now
    kInternal,
    kUnauthenticated,    // no credentials, or credentials that are not valid (HTTP 401)
    kPermissionDenied,   // valid credentials that do not allow this (HTTP 403)
    kResourceExhausted,  // a rate or size limit was hit (HTTP 429)
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  static Status FailedPrecondition(std::string msg) {
    return Status(Code::kFailedPrecondition, std::move(msg));
  }
  static Status AlreadyExists(std::string msg) {
    return Status(Code::kAlreadyExists, std::move(msg));
  }
  static Status IoError(std::string msg) { return Status(Code::kIoError, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }
  static Status Unauthenticated(std::string msg) {
    return Status(Code::kUnauthenticated, std::move(msg));
  }
  static Status PermissionDenied(std::string msg) {
    return Status(Code::kPermissionDenied, std::move(msg));
  }
  static Status ResourceExhausted(std::string msg) {
    return Status(Code::kResourceExhausted, std::move(msg));
  }

  bool ok() const { return code_ == Code::kOk; }
  bool isNotFound() const { return code_ == Code::kNotFound; }
  bool isInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool isFailedPrecondition() const { return code_ == Code::kFailedPrecondition; }
  bool isAlreadyExists() const { return code_ == Code::kAlreadyExists; }
  bool isIoError() const { return code_ == Code::kIoError; }
  bool isCorruption() const { return code_ == Code::kCorruption; }
  bool isUnavailable() const { return code_ == Code::kUnavailable; }
  bool isUnauthenticated() const { return code_ == Code::kUnauthenticated; }
  bool isPermissionDenied() const { return code_ == Code::kPermissionDenied; }

  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string toString() const;

  // Deliberately drops a status; spelled out so readers see it was a choice.
  void ignoreError() const {}

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

const char* codeName(Status::Code code);

inline std::string Status::toString() const {
  if (ok()) return "OK";
  return std::string(codeName(code_)) + ": " + message_;
}

inline const char* codeName(Status::Code code) {
  switch (code) {
    case Status::Code::kOk:
      return "OK";
    case Status::Code::kNotFound:
      return "NotFound";
    case Status::Code::kInvalidArgument:
      return "InvalidArgument";
    case Status::Code::kFailedPrecondition:
      return "FailedPrecondition";
    case Status::Code::kAlreadyExists:
      return "AlreadyExists";
    case Status::Code::kIoError:
      return "IOError";
    case Status::Code::kCorruption:
      return "Corruption";
    case Status::Code::kUnavailable:
      return "Unavailable";
    case Status::Code::kInternal:
      return "Internal";
    case Status::Code::kUnauthenticated:
      return "Unauthenticated";
    case Status::Code::kPermissionDenied:
      return "PermissionDenied";
    case Status::Code::kResourceExhausted:
      return "ResourceExhausted";
  }
  return "Unknown";
}

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    // An OK status without a value is a programming error.
    if (status_.ok()) std::abort();
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & {
    if (!ok()) std::abort();
    return *value_;
  }
  const T& value() const& {
    if (!ok()) std::abort();
    return *value_;
  }
  T&& value() && {
    if (!ok()) std::abort();
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace flotilla::common
