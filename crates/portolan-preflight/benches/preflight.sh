#!/usr/bin/env bash
# Benchmark of `portolan check` against nmap -sT and RustScan: the same
# targets, one run each, inside two network namespaces this script creates.
#
#   sudo crates/portolan-preflight/benches/preflight.sh [PORTOLAN] [RUSTSCAN]
#
# PORTOLAN defaults to target/release/portolan (build it first:
# `cargo build --release -p portolan`), RUSTSCAN to `rustscan` in PATH
# (`cargo install rustscan --root /tmp/rustscan-root`; GPL, only ever run as
# an external program). nmap is Debian's package (`apt-get install -y nmap`).
#
# Targets: one namespace "target" with three addresses on a veth to the
# namespace "scan": 198.18.7.2 where `portolan listen` accepts every port
# (open), 198.18.7.3 where nothing listens (closed: RST) and 198.18.7.4 whose
# packets nftables drops (filtered). Each gets the same 3334 ports
# 30000-33333: 10,002 probes in all. Every tool is run once per set: the
# whole set, then each class alone. Times are wall-clock seconds of the
# whole process (start-up and output included). The timeout is 1000 ms and
# retries 0 (nmap --max-retries 0, RustScan --tries 1) unless RETRIES is set.
#
# Output: one line per run, and a markdown table on standard output at the end.
set -euo pipefail

PORTOLAN=${1:-target/release/portolan}
RUSTSCAN=${2:-rustscan}
TIMEOUT_MS=${TIMEOUT_MS:-1000}
RETRIES=${RETRIES:-0}
PORTS_FIRST=30000
PORTS_LAST=33333
NPORTS=$((PORTS_LAST - PORTS_FIRST + 1))
OPEN=198.18.7.2
CLOSED=198.18.7.3
FILTERED=198.18.7.4
SCAN=198.18.7.1

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 2; }
command -v nmap >/dev/null || { echo "nmap is missing: apt-get install -y nmap" >&2; exit 2; }
command -v "$RUSTSCAN" >/dev/null || { echo "RustScan is missing: cargo install rustscan --root DIR" >&2; exit 2; }
[ -x "$PORTOLAN" ] || { echo "$PORTOLAN is missing: cargo build --release -p portolan" >&2; exit 2; }
PORTOLAN=$(realpath "$PORTOLAN")

# 10,002 sockets in flight, plus the listener's 3334: raise the open-files limit.
# As high as the hard limit allows (a container may cap it); 20,000 is enough.
HARD=$(ulimit -Hn)
if [ "$HARD" = unlimited ] || [ "$HARD" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$HARD"; fi
[ "$(ulimit -n)" -ge 14000 ] || { echo "open-files limit $(ulimit -n) is below 14000" >&2; exit 2; }
NOFILE=$(ulimit -n)

ID=pfbench$$
NS_SCAN=$ID-scan
NS_TARGET=$ID-target
WORK=$(mktemp -d)
LISTENER=
cleanup() {
    [ -n "$LISTENER" ] && kill "$LISTENER" 2>/dev/null && wait "$LISTENER" 2>/dev/null || true
    ip netns del "$NS_SCAN" 2>/dev/null || true
    ip netns del "$NS_TARGET" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS_SCAN"
ip netns add "$NS_TARGET"
ip link add pfb-s netns "$NS_SCAN" type veth peer name pfb-t netns "$NS_TARGET"
ip -n "$NS_SCAN" addr add $SCAN/24 dev pfb-s
for a in $OPEN $CLOSED $FILTERED; do ip -n "$NS_TARGET" addr add $a/24 dev pfb-t; done
for ns in "$NS_SCAN" "$NS_TARGET"; do
    ip -n "$ns" link set lo up
done
ip -n "$NS_SCAN" link set pfb-s up
ip -n "$NS_TARGET" link set pfb-t up
ip netns exec "$NS_TARGET" nft -f - <<EOF
table inet bench {
  chain input {
    type filter hook input priority filter; policy accept;
    ip daddr $FILTERED drop
  }
}
EOF

# A spec with one flow per class, and one spec per class alone.
write_spec() { # FILE FLOW-TARGETS...
    local file=$1; shift
    {
        echo "portolan: 1"
        echo "system: {name: Preflight benchmark}"
        echo "components:"
        echo "  - {id: scanner}"
        echo "  - {id: open}"
        echo "  - {id: closed}"
        echo "  - {id: filtered}"
        echo "flows:"
        for to in "$@"; do
            echo "  - {from: scanner, to: $to, protocol: tcp, port: '$PORTS_FIRST-$PORTS_LAST'}"
        done
    } > "$file"
}
write_spec "$WORK/all.yaml" open closed filtered
for class in open closed filtered; do write_spec "$WORK/$class.yaml" "$class"; done
cat > "$WORK/deployment.yaml" <<EOF
deployment: 1
components:
  scanner: {addresses: [$SCAN]}
  open: {addresses: [$OPEN]}
  closed: {addresses: [$CLOSED]}
  filtered: {addresses: [$FILTERED]}
EOF

# The open ports: portolan listen, as the component `open`.
ip netns exec "$NS_TARGET" "$PORTOLAN" listen "$WORK/all.yaml" -d "$WORK/deployment.yaml" \
    --as open --max-ports $NPORTS > "$WORK/listen.log" 2>&1 &
LISTENER=$!
for _ in $(seq 100); do grep -q '^ready:' "$WORK/listen.log" 2>/dev/null && break; sleep 0.1; done
grep '^ready:' "$WORK/listen.log" >&2 || { cat "$WORK/listen.log" >&2; exit 1; }

now() { date +%s.%N; }
RESULTS=()
record() { # TOOL SET PROBES SECONDS OPEN-FOUND NOTE
    RESULTS+=("| $1 | $2 | $3 | $4 | $5 | $6 |")
    echo "$1 $2: $4 s, $5 open found ($6)" >&2
}

run_portolan() { # SET SPEC PROBES
    local t0 t1 rc=0
    t0=$(now)
    ip netns exec "$NS_SCAN" "$PORTOLAN" check "$2" -d "$WORK/deployment.yaml" --as scanner \
        --from $SCAN --timeout "$TIMEOUT_MS" --retries "$RETRIES" --concurrency 10002 \
        --max-ports $NPORTS -f json -o "$WORK/portolan-$1.json" > /dev/null 2> "$WORK/portolan-$1.err" || rc=$?
    t1=$(now)
    local open classes
    open=$(grep -c '"class": "open"' "$WORK/portolan-$1.json" || true)
    classes=$(grep -o '"class": "[a-z_]*"' "$WORK/portolan-$1.json" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $3; sep=", "}' | tr -d '"')
    record portolan "$1" "$3" "$(echo "$t1 - $t0" | bc -l | xargs printf '%.2f')" "$open" "exit $rc; $classes"
}

run_nmap() { # SET ADDRESSES PROBES
    local t0 t1
    t0=$(now)
    # shellcheck disable=SC2086
    ip netns exec "$NS_SCAN" nmap -sT -Pn -n -p "$PORTS_FIRST-$PORTS_LAST" \
        --max-retries "$RETRIES" --initial-rtt-timeout "${TIMEOUT_MS}ms" \
        --min-rtt-timeout "${TIMEOUT_MS}ms" --max-rtt-timeout "${TIMEOUT_MS}ms" \
        -oG "$WORK/nmap-$1.txt" $2 > /dev/null
    t1=$(now)
    local open
    open=$(grep -o '[0-9]*/open/' "$WORK/nmap-$1.txt" | wc -l || true)
    record "nmap -sT" "$1" "$3" "$(echo "$t1 - $t0" | bc -l | xargs printf '%.2f')" "$open" "default parallelism"
}

run_rustscan() { # SET ADDRESSES PROBES
    local t0 t1
    t0=$(now)
    ip netns exec "$NS_SCAN" "$RUSTSCAN" -n --no-banner --accessible -g --scripts none \
        -a "$2" -r "$PORTS_FIRST-$PORTS_LAST" -b 10002 -t "$TIMEOUT_MS" \
        --tries $((RETRIES + 1)) -u "$NOFILE" > "$WORK/rustscan-$1.txt" 2>&1
    t1=$(now)
    local open
    open=$(grep -o '\[[0-9,]*\]' "$WORK/rustscan-$1.txt" | tr -d '[]' | tr ',' '\n' | grep -c . || true)
    record RustScan "$1" "$3" "$(echo "$t1 - $t0" | bc -l | xargs printf '%.2f')" "$open" "batch 10002"
}

ALL=$((3 * NPORTS))
run_portolan all "$WORK/all.yaml" $ALL
run_rustscan all "$OPEN,$CLOSED,$FILTERED" $ALL
run_nmap all "$OPEN $CLOSED $FILTERED" $ALL
for class in open closed filtered; do
    case $class in open) addr=$OPEN ;; closed) addr=$CLOSED ;; filtered) addr=$FILTERED ;; esac
    run_portolan $class "$WORK/$class.yaml" $NPORTS
    run_rustscan $class $addr $NPORTS
    run_nmap $class $addr $NPORTS
done

echo
echo "Timeout ${TIMEOUT_MS} ms, retries ${RETRIES}; $(nproc) CPU(s); $(uname -r); nmap $(nmap --version | awk 'NR==1{print $3}'); $("$RUSTSCAN" --version); $("$PORTOLAN" --version)"
echo
echo "| tool | targets | probes | seconds | open found | notes |"
echo "| ---- | ------- | ------ | ------- | ---------- | ----- |"
printf '%s\n' "${RESULTS[@]}"
