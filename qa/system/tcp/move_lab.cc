#include "qa/system/tcp/move_lab.h"

#include <algorithm>

#include "qa/lab/netns.h"

namespace xo::tcpmove {

// Decides with the Plan; remembers the chosen destination for take(), which
// the server calls on the same thread right after hand_over_*().
class MoveLab::PlanHook final : public testserver::Hook {
 public:
  PlanHook(MoveLab& ml, std::string here) : ml_(ml), here_(std::move(here)) {}

  bool hand_over_before_response(const testserver::RequestInfo& r) override {
    if (!ml_.plan_.before) return false;
    auto to = ml_.plan_.before(here_, r);
    if (!to || *to == here_ || !ml_.servers_.count(*to)) return false;
    destination_ = *to;
    return true;
  }
  std::optional<uint64_t> hand_over_at(const testserver::RequestInfo& r) override {
    if (!ml_.plan_.mid) return std::nullopt;
    auto at = ml_.plan_.mid(here_, r);
    if (!at || at->second == here_ || !ml_.servers_.count(at->second)) return std::nullopt;
    destination_ = at->second;
    return at->first;
  }
  void before_body(int fd, const testserver::RequestInfo& r) override {
    if (ml_.plan_.before_body) ml_.plan_.before_body(here_, fd, r);
  }
  void take(UniqueFd fd, testserver::ResumeState st) override {
    std::string to = std::exchange(destination_, {});
    ml_.mover_->move(std::move(fd), std::move(st), ml_.host(here_), ml_.host(to));
  }

 private:
  MoveLab& ml_;
  std::string here_;
  static thread_local std::string destination_;
};

thread_local std::string MoveLab::PlanHook::destination_;

Plan answer_by(std::vector<std::string> hosts) {
  Plan p;
  p.before = [hosts](const std::string&, const testserver::RequestInfo& r) -> std::optional<std::string> {
    if (hosts.empty()) return std::nullopt;
    return hosts[std::min<size_t>(r.seq, hosts.size()) - 1];
  };
  return p;
}

Result<std::unique_ptr<MoveLab>> MoveLab::start(const lab::Lab& lab, Plan plan, uint16_t port,
                                                testserver::StreamFactory* streams) {
  auto ml = std::unique_ptr<MoveLab>(new MoveLab());
  ml->plan_ = std::move(plan);
  ml->diverter_ = lab::make_default_diverter(lab);
  ml->mover_ = std::make_unique<Mover>(*ml->diverter_);
  for (const auto& name : lab.host_names()) {
    if (name == "client") continue;
    const lab::Host* h = lab.find(name);
    Entry& e = ml->servers_[name];
    e.hook = std::make_unique<PlanHook>(*ml, name);
    {
      XO_ASSIGN_OR_RETURN(auto scope, lab::NetnsScope::enter(h->ns));
      XO_ASSIGN_OR_RETURN(e.server, testserver::Server::start({.name = name, .port = port, .hook = e.hook.get(), .streams = streams}));
    }
    e.hs = HostServer{name, h->ns, e.server.get()};
    ml->port_ = e.server->port();
  }
  return ml;
}

void MoveLab::stop() {
  for (auto& [name, e] : servers_)
    if (e.server) e.server->stop();
}

MoveLab::~MoveLab() { stop(); }

}  // namespace xo::tcpmove
