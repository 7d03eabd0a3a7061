#!/usr/bin/env bash
# Smoke test of the kernel VM (qa/vm): real TC flower rules in Debian's kernel.
# Runs INSIDE the VM (vm.steer.flower_smoke); needs cls_flower act_pedit act_csum
# act_mirred sch_ingress veth bridge.
#
# Three namespaces on a bridge (in a fourth, "hub"): client .2, frontend .10 holding the
# service address .100, backend .20 (198.18.0.0/24). On the frontend's ingress a flower
# rule (skip_hw) rewrites the destination IP and MACs of the client's flow to the
# service, fixes checksums and redirects it back out of the same NIC to the backend; on
# the backend's egress a second rule rewrites the source back to the service address.
# The client's TCP connection to .100:8080 must then be answered by the backend's echo
# server, the rules' counters must show the packets, the same connection must fail
# without the rules (negative control: nobody listens on the frontend), and the rule
# with skip_sw must be refused (no hardware behind a veth).
set -euo pipefail

for m in cls_flower act_pedit act_csum act_mirred sch_ingress veth bridge; do
  [ -d "/sys/module/$m" ] || { echo "not ok - module $m not loaded (xo-vm --modules)"; exit 1; }
done

failures=0
check() {  # check "what" command...
  local what=$1; shift
  if "$@"; then echo "ok - $what"; else echo "not ok - $what"; failures=$((failures + 1)); fi
}

# Every exec of iproute2 costs 0.1-0.3 s under TCG: one batch per namespace.
service=198.18.0.100
port=8080
declare -A addr=([client]=198.18.0.2 [frontend]=198.18.0.10 [backend]=198.18.0.20)
declare -A mac=([client]=02:00:c6:12:00:02 [frontend]=02:00:c6:12:00:0a [backend]=02:00:c6:12:00:14)
{
  for n in hub client frontend backend; do echo "netns add $n"; done
  for n in client frontend backend; do
    echo "link add eth0 address ${mac[$n]} netns $n type veth peer name p-$n netns hub"
  done
} | ip -batch -
{
  echo "link add br0 type bridge"
  echo "link set br0 up"
  for n in client frontend backend; do echo "link set p-$n master br0 up"; done
} | ip -n hub -batch -
for n in client frontend backend; do
  printf 'link set lo up\naddr add %s/24 dev eth0\nlink set eth0 up\n' "${addr[$n]}" |
    ip -n "$n" -batch -
done
ip -n frontend addr add "$service/32" dev eth0

# One TCP exchange client -> service:port; prints the line that came back.
# (nsenter, not `ip netns exec`: no remount of /sys needed here, one exec less.)
exchange() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  nsenter --net=/run/netns/client timeout 10 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    echo "$3" >&3
    read -r -t 5 line <&3 || exit 1
    echo "$line"' _ "$service" "$port" "$1"
}

# Echo server on the backend, one connection (busybox nc).
nsenter --net=/run/netns/backend nc -l -p "$port" -e cat &
server_pid=$!
sleep 0.3

# Negative control: no rules, the frontend owns the service address and refuses.
if exchange "control" >/dev/null 2>&1; then control_answered=1; else control_answered=0; fi
check "negative control: without rules the connection fails" test "$control_answered" = 0

tc -n frontend -batch - <<EOF
qdisc add dev eth0 clsact
filter add dev eth0 ingress protocol ip pref 10 flower skip_hw ip_proto tcp dst_ip $service dst_port $port action pedit ex munge ip dst set ${addr[backend]} munge eth dst set ${mac[backend]} munge eth src set ${mac[frontend]} pipe action csum ip tcp pipe action mirred egress redirect dev eth0
EOF
tc -n backend -batch - <<EOF
qdisc add dev eth0 clsact
filter add dev eth0 egress protocol ip pref 10 flower skip_hw ip_proto tcp src_ip ${addr[backend]} src_port $port action pedit ex munge ip src set $service pipe action csum ip tcp
EOF

reply=$(exchange "hello-through-flower" 2>&1 || true)
check "client's connection to $service:$port is answered by the backend (got '$reply')" \
  test "$reply" = "hello-through-flower"
# The server is gone after one connection; when the exchange failed it still waits.
kill "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true

# Counters: the first action's stats of each rule ("Sent N bytes M pkt").
frontend_rules=$(tc -n frontend -s filter show dev eth0 ingress)
backend_rules=$(tc -n backend -s filter show dev eth0 egress)
packets() { awk '/Sent [0-9]+ bytes [0-9]+ pkt/ { print $4; exit }'; }
in_pkts=$(packets <<<"$frontend_rules")
out_pkts=$(packets <<<"$backend_rules")
echo "# frontend ingress rule: ${in_pkts:-?} packets; backend egress rule: ${out_pkts:-?} packets"
check "frontend redirect rule counted the client's packets (>= 4)" test "${in_pkts:-0}" -ge 4
check "backend source-rewrite rule counted the replies (>= 3)" test "${out_pkts:-0}" -ge 3
check "rules are in software only (not_in_hw)" grep -q not_in_hw <<<"$frontend_rules"

# skip_sw: hardware only. A veth has no TC offload, so the kernel must refuse.
if err=$(tc -n frontend filter add dev eth0 ingress protocol ip pref 20 flower skip_sw \
      ip_proto tcp dst_ip "$service" dst_port 9090 \
      action mirred egress redirect dev eth0 2>&1); then
  check "skip_sw rule is refused without hardware" false
else
  echo "# skip_sw refused: ${err//$'\n'/ }"
  check "skip_sw rule is refused without hardware" true
fi

printf 'netns del %s\n' client frontend backend hub | ip -batch -
echo "# $failures failure(s)"
[ "$failures" = 0 ]
