#include "common/handoff/channel/peer_client.h"

#include <boost/asio/post.hpp>

#include "common/handoff/channel/socket_tuning.h"
#include "common/handoff/channel/tls_config.h"
#include "common/handoff/wire/messages.h"

namespace xo::handoff::channel {
using asio::ip::tcp;

Result<std::shared_ptr<PeerClient>> PeerClient::create(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls,
                                                       PeerOptions options) {
  if (!tls) return error("control client: no TLS context (there is no plaintext mode)", EINVAL);
  XO_TRY(wire::validate_host_id(options.peer_host_id, "control client: peer host id"));
  if (!options.log) options.log = stderr_logger("client->" + options.peer_host_id);
  return std::shared_ptr<PeerClient>(new PeerClient(io, std::move(tls), std::move(options)));
}

PeerClient::PeerClient(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls, PeerOptions options)
    : strand_(asio::make_strand(io)),
      tls_(std::move(tls)),
      options_(std::move(options)),
      backoff_(options_.backoff, options_.backoff_seed ? options_.backoff_seed : std::random_device{}()),
      retry_timer_(strand_) {}

PeerClient::~PeerClient() = default;

void PeerClient::start() {
  asio::post(strand_, [self = shared_from_this()] { self->attempt(); });
}

void PeerClient::attempt() {
  if (stopped_.load()) return;
  ++attempts_;
  auto stream = std::make_shared<TlsStream>(tcp::socket(strand_), *tls_);
  if (auto st = expect_peer_host_id(stream->native_handle(), options_.peer_host_id); !st.ok())
    return attempt_failed(st.error().to_string());
  attempt_stream_ = stream;
  auto timer = std::make_shared<asio::steady_timer>(strand_, options_.connect_timeout);
  timer->async_wait([stream](boost::system::error_code ec) {
    if (ec) return;
    boost::system::error_code ignored;
    stream->lowest_layer().close(ignored);  // fails the connect or handshake below
  });
  stream->lowest_layer().async_connect(options_.endpoint, [self = shared_from_this(), stream,
                                                           timer](boost::system::error_code ec) {
    if (ec) {
      timer->cancel();
      return self->attempt_failed("connect: " + ec.message());
    }
    tune_control_socket(stream->next_layer());
    stream->async_handshake(asio::ssl::stream_base::client, [self, stream, timer](boost::system::error_code ec) {
      timer->cancel();
      if (ec) {
        std::string why = "TLS handshake: " + ec.message();
        const long verify = SSL_get_verify_result(stream->native_handle());
        if (verify != X509_V_OK) why += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
        return self->attempt_failed(why);
      }
      self->established(stream);
    });
  });
}

void PeerClient::attempt_failed(const std::string& why) {
  attempt_stream_.reset();
  if (stopped_.load()) return;
  options_.log("connect to " + options_.peer_host_id + " at " + options_.endpoint.address().to_string() + ":" +
               std::to_string(options_.endpoint.port()) + " failed: " + why);
  schedule_retry();
}

void PeerClient::schedule_retry() {
  if (stopped_.load()) return;
  const auto delay = backoff_.next();
  {
    std::lock_guard lock(mu_);
    delays_.push_back(delay);
  }
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->attempt();
  });
}

void PeerClient::established(std::shared_ptr<TlsStream> stream) {
  attempt_stream_.reset();
  if (stopped_.load()) {
    boost::system::error_code ignored;
    stream->lowest_layer().close(ignored);
    return;
  }
  // SSL_set1_host already matched the certificate; read the id back for the record.
  auto host_id = peer_host_id(stream->native_handle());
  if (!host_id.ok()) return attempt_failed(host_id.error().to_string());
  ConnectionHandlers handlers = options_.handlers;
  handlers.on_close = [weak = weak_from_this(), user = options_.handlers.on_close](const ConnectionPtr& conn,
                                                                                   const Error& why) {
    if (user) user(conn, why);
    auto self = weak.lock();
    if (!self) return;
    {
      std::lock_guard lock(self->mu_);
      if (self->conn_ == conn) self->conn_.reset();
    }
    // on_close runs on the connection's executor, which is our strand.
    // Only a connection that stayed up resets the backoff: a peer that
    // accepts the handshake and then drops us (it does not allow our host
    // id, it is overloaded) must not be hammered at the initial delay.
    if (std::chrono::steady_clock::now() - self->established_at_ >= self->options_.stable_after)
      self->backoff_.reset();
    self->schedule_retry();
  };
  auto conn = Connection::create(std::move(*stream), *host_id, std::move(handlers), options_.log);
  {
    std::lock_guard lock(mu_);
    conn_ = conn;
  }
  established_at_ = std::chrono::steady_clock::now();
  ++connects_;
  conn->start();
  if (options_.on_connected) options_.on_connected(conn);
}

ConnectionPtr PeerClient::connection() const {
  std::lock_guard lock(mu_);
  return conn_;
}

bool PeerClient::connected() const {
  auto c = connection();
  return c && c->is_open();
}

std::vector<std::chrono::milliseconds> PeerClient::delays() const {
  std::lock_guard lock(mu_);
  return delays_;
}

uint64_t PeerClient::request(pb::Envelope request, std::chrono::milliseconds timeout, ResponseHandler done) {
  auto c = connection();
  if (c && c->is_open()) return c->request(std::move(request), timeout, std::move(done));
  asio::post(strand_, [done = std::move(done), peer = options_.peer_host_id] {
    done(error("no control connection to " + peer, ENOTCONN));
  });
  return 0;
}

Status PeerClient::send(pb::Envelope message) {
  auto c = connection();
  if (!c || !c->is_open()) return error("no control connection to " + options_.peer_host_id, ENOTCONN);
  return c->send(std::move(message));
}

void PeerClient::stop() {
  if (stopped_.exchange(true)) return;
  asio::post(strand_, [self = shared_from_this()] {
    self->retry_timer_.cancel();
    if (self->attempt_stream_) {
      boost::system::error_code ignored;
      self->attempt_stream_->lowest_layer().close(ignored);
      self->attempt_stream_.reset();
    }
    ConnectionPtr c;
    {
      std::lock_guard lock(self->mu_);
      c.swap(self->conn_);
    }
    if (c) c->close();
  });
}

}  // namespace xo::handoff::channel
