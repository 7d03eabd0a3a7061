// MoveLab: a lab with the test server on the frontend and every backend, whose
// hooks move live connections between them according to a Plan.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "qa/lab/flow_diverter.h"
#include "qa/lab/lab.h"
#include "qa/server/server.h"
#include "qa/system/tcp/mover.h"

namespace xo::tcpmove {

struct Plan {
  // Before answering a request on server `here`: the host to move to.
  std::function<std::optional<std::string>(const std::string& here, const testserver::RequestInfo&)> before;
  // While answering a GET on `here`: (body offset, host) to move at.
  std::function<std::optional<std::pair<uint64_t, std::string>>(const std::string& here,
                                                                 const testserver::RequestInfo&)>
      mid;
  // After a GET's head was written on `here`, before its body.
  std::function<void(const std::string& here, int fd, const testserver::RequestInfo&)> before_body;
};

// Plan: request `seq` (1-based, per connection) is answered by hosts[seq-1]
// (the last entry repeats).
Plan answer_by(std::vector<std::string> hosts);

class MoveLab {
 public:
  // `streams` (not owned, may be null: plain TCP) is given to every server,
  // e.g. a TlsStreamFactory for HTTPS (qa/system/tls).
  static Result<std::unique_ptr<MoveLab>> start(const lab::Lab& lab, Plan plan, uint16_t port = 80,
                                                testserver::StreamFactory* streams = nullptr);
  ~MoveLab();

  Mover& mover() { return *mover_; }
  lab::FlowDiverter& diverter() { return *diverter_; }
  const HostServer& host(const std::string& name) const { return servers_.at(name).hs; }
  testserver::Server& server(const std::string& name) { return *servers_.at(name).server; }
  uint16_t port() const { return port_; }
  void stop();  // stop every server (joins their threads)

 private:
  class PlanHook;
  struct Entry {
    std::unique_ptr<PlanHook> hook;
    std::unique_ptr<testserver::Server> server;
    HostServer hs;
  };
  MoveLab() = default;

  Plan plan_;
  uint16_t port_ = 80;
  std::unique_ptr<lab::FlowDiverter> diverter_;
  std::unique_ptr<Mover> mover_;
  std::map<std::string, Entry> servers_;
};

}  // namespace xo::tcpmove
