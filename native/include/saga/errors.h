// Error codes shared by every backend. They cross N-API as the `code` of a JS Error and never change
// meaning once published: callers branch on them.
#pragma once
#include <stdexcept>
#include <string>

namespace saga {

enum class ErrorCode {
  BadArgument,      // wrong length, negative count, bad option, duplicate id where ids must be distinct
  UnknownBlock,     // id out of range, or the block holds nothing (free)
  BlockState,       // the block exists but is in the wrong state or tier for the operation
  DoubleRelease,    // release would take a reference count below zero
  OutOfBlocks,      // not enough free or evictable blocks in the tier
  DuplicateHash,    // a hash that is already cached (or repeated within the batch)
  BadKey,           // an eviction key that is NaN
  TableRow,         // a block-table row out of range
  TableFull,        // appending past a block-table row's width
  BackendUnavailable,  // the requested backend cannot run here (no CUDA device, not compiled in)
  Internal,         // a backend failure (a CUDA call failed): a bug or a broken device
};

inline const char* errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::BadArgument: return "ERR_SAGA_BAD_ARGUMENT";
    case ErrorCode::UnknownBlock: return "ERR_SAGA_UNKNOWN_BLOCK";
    case ErrorCode::BlockState: return "ERR_SAGA_BLOCK_STATE";
    case ErrorCode::DoubleRelease: return "ERR_SAGA_DOUBLE_RELEASE";
    case ErrorCode::OutOfBlocks: return "ERR_SAGA_OUT_OF_BLOCKS";
    case ErrorCode::DuplicateHash: return "ERR_SAGA_DUPLICATE_HASH";
    case ErrorCode::BadKey: return "ERR_SAGA_BAD_KEY";
    case ErrorCode::TableRow: return "ERR_SAGA_TABLE_ROW";
    case ErrorCode::TableFull: return "ERR_SAGA_TABLE_FULL";
    case ErrorCode::BackendUnavailable: return "ERR_SAGA_BACKEND_UNAVAILABLE";
    case ErrorCode::Internal: return "ERR_SAGA_INTERNAL";
  }
  return "ERR_SAGA_INTERNAL";
}

// Thrown before any state changes: an operation either completes or leaves the pool as it was.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }
  const char* codeName() const { return errorCodeName(code_); }

 private:
  ErrorCode code_;
};

}  // namespace saga
