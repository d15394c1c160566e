# Two network namespaces joined by a veth pair, made for one test and
# removed on exit: sender $tx (va, 10.203.0.1) and receiver $rx (vb,
# 10.203.0.2), multicast routed over the pair; nothing else is reachable.
# Sourced by tests/netns.sh and scripts/net-bench.sh; needs root.
#   netns_up [MTU]
netns_up() {
    tx=hsdaq-tx-$$ rx=hsdaq-rx-$$
    trap 'ip netns del "$tx" 2>/dev/null || true; ip netns del "$rx" 2>/dev/null || true; netns_cleanup_more' EXIT
    ip netns add "$tx"
    ip netns add "$rx"
    ip link add va netns "$tx" type veth peer name vb netns "$rx"
    ip -n "$tx" addr add 10.203.0.1/24 dev va
    ip -n "$rx" addr add 10.203.0.2/24 dev vb
    for ns in "$tx" "$rx"; do ip -n "$ns" link set lo up; done
    ip -n "$tx" link set va mtu "${1:-1500}" up
    ip -n "$rx" link set vb mtu "${1:-1500}" up
    ip -n "$tx" route add 239.0.0.0/8 dev va
    ip -n "$rx" route add 239.0.0.0/8 dev vb
}
# Extra cleanup a script may define.
netns_cleanup_more() { :; }
