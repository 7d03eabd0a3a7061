// Error codes of the handoff wire layer. xo::Error carries errno-style codes;
// each failure class has its own so callers and tests can tell them apart.
#pragma once

#include <cerrno>

namespace xo::handoff::wire::errc {

inline constexpr int kOversized = EMSGSIZE;          // length 0 or above kMaxFrameBytes
inline constexpr int kTruncated = ENODATA;           // fewer bytes than the frame needs
inline constexpr int kMalformed = EBADMSG;           // not a parsable Envelope / trailing bytes
inline constexpr int kBadVersion = EPROTONOSUPPORT;  // another protocol version
inline constexpr int kBadType = EPROTO;              // unknown type, or type != body
inline constexpr int kInvalidField = EINVAL;         // a field failed validation
inline constexpr int kReplay = EILSEQ;               // replayed or out-of-order sequence number

}  // namespace xo::handoff::wire::errc
