#include "common/steer/tc_hw_backend.h"

#include <net/if.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/netlink.h>

namespace xo::steer {
namespace {

struct AckState {
  int err = 1;  // 1: no answer yet; 0: acked; >0: the kernel's errno
};

int on_error(sockaddr_nl*, nlmsgerr* e, void* arg) {
  static_cast<AckState*>(arg)->err = -e->error;
  return NL_STOP;
}

int on_ack(nl_msg*, void* arg) {
  static_cast<AckState*>(arg)->err = 0;
  return NL_STOP;
}

struct NlCbFree {
  void operator()(nl_cb* cb) const { nl_cb_put(cb); }
};

}  // namespace

Result<std::unique_ptr<TcHwSteer>> TcHwSteer::open(const std::string& ifname, bool skip_sw) {
  std::unique_ptr<TcHwSteer> t(new TcHwSteer);
  t->skip_sw_ = skip_sw;
  t->ifindex_ = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (t->ifindex_ == 0) return sys_error("if_nametoindex(" + ifname + ")");
  t->sock_.reset(nl_socket_alloc());
  if (!t->sock_) return error("nl_socket_alloc", ENOMEM);
  int ret = nl_connect(t->sock_.get(), NETLINK_ROUTE);
  if (ret < 0) return error(std::string("nl_connect(NETLINK_ROUTE): ") + nl_geterror(ret), EIO);
  XO_ASSIGN_OR_RETURN(NlMsgPtr clsact, encode_clsact_add(t->ifindex_));
  auto st = t->transact(clsact.get(), "add clsact qdisc on " + ifname);
  if (!st.ok() && st.error().code != EEXIST) return st.take_error();
  return t;
}

Status TcHwSteer::transact(nl_msg* msg, const std::string& what) {
  std::lock_guard<std::mutex> lock(mu_);
  int ret = nl_send_auto(sock_.get(), msg);
  if (ret < 0) return error(what + ": nl_send_auto: " + nl_geterror(ret), EIO);
  std::unique_ptr<nl_cb, NlCbFree> cb(nl_cb_clone(nl_socket_get_cb(sock_.get())));
  if (!cb) return error("nl_cb_clone", ENOMEM);
  AckState st;
  nl_cb_err(cb.get(), NL_CB_CUSTOM, on_error, &st);
  nl_cb_set(cb.get(), NL_CB_ACK, NL_CB_CUSTOM, on_ack, &st);
  while (st.err == 1) {
    ret = nl_recvmsgs(sock_.get(), cb.get());
    if (ret < 0 && st.err == 1) return error(what + ": nl_recvmsgs: " + nl_geterror(ret), EIO);
  }
  if (st.err) return sys_error(what, st.err);
  return {};
}

Status TcHwSteer::add(const SteerEntry& entry) {
  TcFlowerRule rule{entry, ifindex_, tc_flower_handle(entry.flow), skip_sw_};
  XO_ASSIGN_OR_RETURN(NlMsgPtr msg, encode_tc_flower_add(rule));
  auto st = transact(msg.get(), "tc flower add " + entry.flow.to_string());
  if (!st.ok()) {
    int code = st.error().code;
    // ENOENT: no cls_flower (or an action module) in this kernel; EOPNOTSUPP:
    // the device cannot offload; EINVAL with skip_sw: nobody took the rule in hardware.
    if (code == ENOENT || code == EOPNOTSUPP || (skip_sw_ && code == EINVAL))
      return error("unsupported: " + st.error().to_string(), EOPNOTSUPP);
    return st;
  }
  return {};
}

Status TcHwSteer::remove(const SteerEntry& entry) {
  TcFlowerRule rule{entry, ifindex_, tc_flower_handle(entry.flow), skip_sw_};
  XO_ASSIGN_OR_RETURN(NlMsgPtr msg, encode_tc_flower_del(rule));
  return transact(msg.get(), "tc flower del " + entry.flow.to_string());
}

}  // namespace xo::steer
