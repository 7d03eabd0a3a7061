#include "common/handoff/channel/connection.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <iostream>

#include "common/handoff/channel/poll_window.h"
#include "common/handoff/wire/errors.h"
#include "common/handoff/wire/limits.h"
#include "common/handoff/wire/messages.h"

namespace xo::handoff::channel {

Logger stderr_logger(std::string who) {
  return [who = std::move(who)](const std::string& line) {
    std::cerr << "xo-handoff[" + who + "]: " + line + "\n" << std::flush;
  };
}

ConnectionPtr Connection::create(TlsStream stream, std::string peer_host_id, ConnectionHandlers handlers,
                                 Logger log) {
  return ConnectionPtr(new Connection(std::move(stream), std::move(peer_host_id), std::move(handlers),
                                      std::move(log)));
}

Connection::Connection(TlsStream stream, std::string peer_host_id, ConnectionHandlers handlers, Logger log)
    : stream_(std::move(stream)),
      peer_host_id_(std::move(peer_host_id)),
      handlers_(std::move(handlers)),
      log_(std::move(log)),
      shutdown_timer_(stream_.get_executor()) {
  boost::system::error_code ec;
  remote_ = stream_.lowest_layer().remote_endpoint(ec);
}

Connection::~Connection() {
  boost::system::error_code ec;
  stream_.lowest_layer().close(ec);
}

void Connection::start() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] { self->read_more(); });
}

Status Connection::check_sendable(pb::Envelope& message) const {
  if (closed_.load()) return error("control channel to " + peer_host_id_ + " is closed", ENOTCONN);
  // The real seq is assigned on the strand; validate with a stand-in.
  message.set_seq(1);
  if (auto st = wire::validate(message); !st.ok()) return annotate(st.take_error(), "send");
  if (message.ByteSizeLong() > wire::kMaxFrameBytes)
    return error("send: message above the frame limit", wire::errc::kOversized);
  return {};
}

uint64_t Connection::request(pb::Envelope request, std::chrono::milliseconds timeout, ResponseHandler done) {
  if (request.txn() == 0) request.set_txn(next_txn());
  const uint64_t txn = request.txn();
  Status st = wire::kind_of(request.type()) == wire::Kind::kRequest
                  ? check_sendable(request)
                  : Status(error(std::string(wire::type_name(request.type())) + " is not a request", EINVAL));
  // dispatch: called on the connection's own thread (the usual case: a
  // state machine's step) the message is written before the caller goes on.
  // `done` still never runs inside request(): failures are posted.
  asio::dispatch(stream_.get_executor(), [self = shared_from_this(), st = std::move(st), request = std::move(request),
                                          timeout, done = std::move(done)]() mutable {
    auto fail_later = [&](Error why) {
      asio::post(self->stream_.get_executor(), [done = std::move(done), why = std::move(why)]() mutable { done(why); });
    };
    if (!st.ok()) return fail_later(st.take_error());
    if (self->closed_.load())
      return fail_later(error("control channel to " + self->peer_host_id_ + " is closed", ENOTCONN));
    const uint64_t txn = request.txn();
    if (self->pending_.count(txn)) return fail_later(error("txn " + std::to_string(txn) + " already pending", EEXIST));
    // The frame leaves first; the timeout is armed after (arming may
    // reprogram the timerfd). An answer cannot overtake it: same thread.
    const auto type = request.type();
    self->enqueue(std::move(request));
    if (self->closed_.load())  // the frame could not be encoded: the connection failed
      return fail_later(error("control channel to " + self->peer_host_id_ + " is closed", ENOTCONN));
    auto timer = std::make_unique<asio::steady_timer>(self->stream_.get_executor(), timeout);
    timer->async_wait([weak = std::weak_ptr<Connection>(self), txn](boost::system::error_code ec) {
      auto me = weak.lock();
      if (ec || !me) return;
      auto it = me->pending_.find(txn);
      if (it == me->pending_.end()) return;
      auto handler = std::move(it->second.done);
      const auto type = it->second.type;
      me->pending_.erase(it);
      handler(error(std::string(wire::type_name(type)) + " txn " + std::to_string(txn) + " to " +
                        me->peer_host_id_ + ": no answer in time",
                    ETIMEDOUT));
    });
    self->pending_.emplace(txn, Pending{type, std::move(done), std::move(timer)});
  });
  return txn;
}

Status Connection::send(pb::Envelope message) {
  if (wire::kind_of(message.type()) == wire::Kind::kRequest)
    return error("send: " + std::string(wire::type_name(message.type())) + " is a request: use request()", EINVAL);
  XO_TRY(check_sendable(message));
  // dispatch: from the connection's own thread (a READY, a GO) the frame
  // leaves now, not after whatever the caller does next.
  asio::dispatch(stream_.get_executor(), [self = shared_from_this(), message = std::move(message)]() mutable {
    if (!self->closed_.load()) self->enqueue(std::move(message));
  });
  return {};
}

Status Connection::respond(const pb::Envelope& request, pb::Envelope response) {
  if (!wire::answers(request.type(), response.type()))
    return error("respond: " + std::string(wire::type_name(response.type())) + " does not answer " +
                     std::string(wire::type_name(request.type())),
                 EINVAL);
  response.set_txn(request.txn());
  return send(std::move(response));
}

void Connection::enqueue(pb::Envelope message) {
  message.set_seq(send_seq_.next());
  auto frame = wire::encode_frame(message);
  if (!frame.ok()) return fail(annotate(frame.take_error(), "encode"));  // checked before: a bug
  write_queue_.push_back(std::move(frame).value());
  PollWindow::note_traffic();  // its answer is tens of µs away
  if (!writing_) write_next();
}

void Connection::write_next() {
  if (write_queue_.empty()) {
    writing_ = false;
    if (closing_) shutdown_stream();
    return;
  }
  writing_ = true;
  asio::async_write(stream_, asio::buffer(write_queue_.front()),
                    [self = shared_from_this()](boost::system::error_code ec, size_t) {
                      if (ec) {
                        self->writing_ = false;
                        if (self->closed_.load()) {  // failed while flushing before close_notify
                          boost::system::error_code ignored;
                          return self->stream_.lowest_layer().close(ignored);
                        }
                        return self->fail(error("write to " + self->peer_host_id_ + ": " + ec.message()));
                      }
                      self->write_queue_.pop_front();
                      self->write_next();
                    });
}

void Connection::read_more() {
  // Room for the rest of a frame begun: take_frames() made room for a whole
  // frame once its header was in; a header cut at the end of in_ moves to
  // the front (fewer than 4 bytes).
  constexpr size_t kInitial = 16u << 10;
  if (in_.size() < kInitial) in_.resize(kInitial);
  if (in_end_ == in_.size()) compact_input();
  auto room = asio::buffer(in_.data() + in_end_, in_.size() - in_end_);
  stream_.async_read_some(room, [self = shared_from_this()](boost::system::error_code ec, size_t n) {
    if (ec) {
      if (self->closed_.load()) return;
      if (ec == asio::error::eof)  // close_notify: the peer shut down cleanly; answer in kind
        return self->finish(error("peer " + self->peer_host_id_ + " closed the connection"), /*graceful=*/true);
      return self->fail(error("read from " + self->peer_host_id_ + ": " + ec.message()));
    }
    if (self->closed_.load()) return;  // closed locally while these bytes arrived
    PollWindow::note_traffic();        // a handoff's next frame follows soon
    self->in_end_ += n;
    if (self->take_frames() && !self->closed_.load()) self->read_more();
  });
}

void Connection::compact_input() {
  std::copy(in_.begin() + static_cast<std::ptrdiff_t>(in_begin_), in_.begin() + static_cast<std::ptrdiff_t>(in_end_),
            in_.begin());
  in_end_ -= in_begin_;
  in_begin_ = 0;
}

bool Connection::take_frames() {
  while (in_end_ - in_begin_ >= wire::kFrameHeaderBytes) {
    const uint8_t* frame = in_.data() + in_begin_;
    auto length = wire::decode_frame_length(std::span(frame, wire::kFrameHeaderBytes));
    if (!length.ok()) {
      fail(annotate(length.take_error(), "from " + peer_host_id_));
      return false;
    }
    const size_t whole = wire::kFrameHeaderBytes + *length;  // bounded by decode_frame_length
    if (in_end_ - in_begin_ < whole) {
      // The rest is still on its way: make room for all of it.
      if (in_.size() - in_begin_ < whole) {
        compact_input();
        if (in_.size() < whole) in_.resize(whole);
      }
      return true;
    }
    auto envelope = wire::decode_envelope(std::span(frame + wire::kFrameHeaderBytes, *length));
    in_begin_ += whole;
    if (!envelope.ok()) {
      fail(annotate(envelope.take_error(), "from " + peer_host_id_));
      return false;
    }
    if (auto st = recv_seq_.accept(envelope->seq()); !st.ok()) {
      fail(annotate(st.take_error(), "from " + peer_host_id_));
      return false;
    }
    dispatch(std::move(envelope).value());
    if (closed_.load()) return false;
  }
  if (in_begin_ == in_end_) {
    in_begin_ = in_end_ = 0;
    if (in_.size() > (1u << 20)) std::vector<uint8_t>().swap(in_);  // no 64 MiB idling
  }
  return true;
}

void Connection::dispatch(pb::Envelope envelope) {
  if (wire::kind_of(envelope.type()) == wire::Kind::kResponse) {
    auto it = pending_.find(envelope.txn());
    if (it != pending_.end()) {
      Pending p = std::move(it->second);
      pending_.erase(it);
      // The answer first, the timer after (cancelling may reprogram the
      // timerfd): a READY's GO leaves inside done(). The timer cannot fire in
      // between (same thread; its handler also finds no pending entry).
      if (!wire::answers(p.type, envelope.type()))
        p.done(error(std::string(wire::type_name(envelope.type())) + " does not answer " +
                         std::string(wire::type_name(p.type)) + " txn " + std::to_string(envelope.txn()),
                     wire::errc::kBadType));
      else
        p.done(std::move(envelope));
      p.timer->cancel();
      return;
    }
  }
  if (handlers_.on_message) handlers_.on_message(shared_from_this(), std::move(envelope));
}

void Connection::fail(Error why) { finish(std::move(why), /*graceful=*/false); }

void Connection::close() {
  asio::post(stream_.get_executor(),
             [self = shared_from_this()] { self->finish(error("closed by this host"), /*graceful=*/true); });
}

void Connection::finish(Error why, bool graceful) {
  if (closed_.exchange(true)) return;
  // why.message only: the errno names of wire errors (EILSEQ for a replay)
  // would mislead an operator.
  log_("connection to " + peer_host_id_ + " closed: " + why.message);
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [txn, p] : pending) {
    p.timer->cancel();
    p.done(error(std::string(wire::type_name(p.type)) + " txn " + std::to_string(txn) + " to " + peer_host_id_ +
                     ": connection closed (" + why.message + ")",
                 ECONNRESET));
  }
  if (graceful) {
    closing_ = true;
    if (!writing_) shutdown_stream();  // else once the queue is flushed
  } else {
    write_queue_.clear();  // after an error nothing more is trusted to the stream
    boost::system::error_code ec;
    stream_.lowest_layer().close(ec);
  }
  if (!close_reported_ && handlers_.on_close) {
    close_reported_ = true;
    handlers_.on_close(shared_from_this(), why);
  }
}

void Connection::shutdown_stream() {
  if (shutting_down_) return;
  shutting_down_ = true;
  // Stop the read loop first: an ssl::stream must not run a read and the
  // shutdown's own read of close_notify at the same time.
  boost::system::error_code ec;
  stream_.lowest_layer().cancel(ec);
  shutdown_timer_.expires_after(std::chrono::milliseconds(500));
  shutdown_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec) return;  // shutdown finished first
    boost::system::error_code ignored;
    self->stream_.lowest_layer().close(ignored);  // peer never answered close_notify
  });
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    self->stream_.async_shutdown([self](boost::system::error_code) {
      self->shutdown_timer_.cancel();
      boost::system::error_code ignored;
      self->stream_.lowest_layer().close(ignored);
    });
  });
}

}  // namespace xo::handoff::channel
