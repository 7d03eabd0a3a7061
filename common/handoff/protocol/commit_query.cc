#include "common/handoff/protocol/commit_query.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <mutex>

#include "common/handoff/channel/peer_client.h"
#include "common/handoff/wire/messages.h"

namespace xo::handoff::protocol {
namespace {

// One question: answered exactly once, by the answer or by the deadline.
struct Question {
  std::mutex mu;
  std::function<void(Result<bool>)> done;
  std::shared_ptr<channel::PeerClient> client;
  std::unique_ptr<boost::asio::steady_timer> timer;

  void answer(Result<bool> r) {
    std::function<void(Result<bool>)> d;
    std::shared_ptr<channel::PeerClient> c;
    {
      std::lock_guard lock(mu);
      d = std::move(done);
      done = nullptr;
      c = std::move(client);
      if (timer) timer->cancel();
    }
    if (c) c->stop();
    if (d) d(std::move(r));
  }
};

}  // namespace

ChannelCommitQuery::ChannelCommitQuery(boost::asio::io_context& io, std::shared_ptr<boost::asio::ssl::context> tls,
                                       Resolve resolve, std::chrono::milliseconds deadline)
    : io_(io), tls_(std::move(tls)), resolve_(std::move(resolve)), deadline_(deadline) {}

void ChannelCommitQuery::query(const std::string& origin_host, uint64_t flow_id,
                               std::function<void(Result<bool>)> done) {
  auto endpoint = resolve_(origin_host);
  if (!endpoint) {
    boost::asio::post(io_, [done = std::move(done), origin_host] {
      done(error("commit query: no address for host " + origin_host, EHOSTUNREACH));
    });
    return;
  }
  auto q = std::make_shared<Question>();
  q->done = std::move(done);
  const auto deadline = deadline_;
  channel::PeerOptions opts;
  opts.peer_host_id = origin_host;
  opts.endpoint = *endpoint;
  opts.connect_timeout = deadline;
  opts.backoff = {std::chrono::milliseconds(20), deadline / 4, 2.0, 0.2};
  opts.on_connected = [q, flow_id, deadline](const channel::ConnectionPtr& conn) {
    pb::QueryCommitted ask;
    ask.set_flow_id(flow_id);
    conn->request(wire::wrap(ask), deadline, [q, flow_id](Result<pb::Envelope> r) {
      if (!r.ok()) return q->answer(r.take_error());
      if (r->committed().flow_id() != flow_id) return q->answer(error("commit query: answer for another flow", EPROTO));
      q->answer(r->committed().committed());
    });
  };
  auto client = channel::PeerClient::create(io_, tls_, std::move(opts));
  if (!client.ok()) {
    auto err = client.take_error();
    boost::asio::post(io_, [q, err] { q->answer(err); });
    return;
  }
  {
    std::lock_guard lock(q->mu);
    q->client = *client;
    q->timer = std::make_unique<boost::asio::steady_timer>(io_, deadline);
    q->timer->async_wait([q, origin_host](boost::system::error_code ec) {
      if (!ec) q->answer(error("commit query: no answer from " + origin_host + " in time", ETIMEDOUT));
    });
  }
  (*client)->start();
}

}  // namespace xo::handoff::protocol
