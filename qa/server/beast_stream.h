// BeastStream: any xo::testserver::Stream as a Beast SyncReadStream and
// SyncWriteStream. Beast's sync algorithms call the error_code overloads;
// the throwing ones exist only because the concepts require them.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include "qa/server/stream.h"

namespace xo::testserver {

class BeastStream {
 public:
  explicit BeastStream(Stream& s) : s_(s) {}

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    ec = {};
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::mutable_buffer b = *it;
      if (b.size() == 0) continue;
      auto r = s_.read_some(std::span<uint8_t>(static_cast<uint8_t*>(b.data()), b.size()));
      if (!r.ok()) {
        ec.assign(r.error().code ? r.error().code : EIO, boost::system::system_category());
        return 0;
      }
      if (*r == 0) ec = boost::asio::error::eof;
      return *r;
    }
    return 0;
  }

  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    ec = {};
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::const_buffer b = *it;
      if (b.size() == 0) continue;
      auto r = s_.write_some(std::span<const uint8_t>(static_cast<const uint8_t*>(b.data()), b.size()));
      if (!r.ok()) {
        ec.assign(r.error().code ? r.error().code : EIO, boost::system::system_category());
        return 0;
      }
      return *r;
    }
    return 0;
  }

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers) {
    boost::system::error_code ec;
    size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  Stream& s_;
};

}  // namespace xo::testserver
