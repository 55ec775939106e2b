#!/usr/bin/env bash
# Benchmark of `portolan preflight` against the equivalent Ansible playbook
# (preflight-playbook.yml beside this script): the same hosts, the same
# listeners and checks, one run each, side by side.
#
#   sudo crates/portolan-fleet/benches/fleet.sh [PORTOLAN] [HOSTS]
#
# PORTOLAN defaults to target/release/portolan (`cargo build --release -p
# portolan`), HOSTS to 50. ansible-core comes from PyPI into a virtualenv
# under target/bench-tools/ansible (made when missing). sshd is Debian's
# openssh-server.
#
# The lab: HOSTS network namespaces on one bridge (198.18.8.0/24, no route
# out), each running its own sshd (throwaway host and user keys, a
# throwaway known_hosts and ssh configuration), and a client namespace from
# which both tools run. The system: lb (5 hosts) -> web (15) tcp/8080;
# web -> app (15) tcp/9000 and tcp/9001; web -> cache (5) udp/11211;
# app -> db (10) tcp/5432 and app -> cache udp/11211: every host of a
# component probes every host of the destination. Both tools read the same
# Ansible inventory (groups named after the components); both copy the same
# binary, spec and deployment to a private directory on every host, start
# the listeners, wait until all are ready, run the checks, collect the
# results, stop the listeners, remove the directories and merge one report.
#
# Two things of this lab that a real fleet does not have, and that would
# otherwise measure this machine rather than the tools:
# - Both tools log in as a throwaway user whose login shell is /bin/sh (a
#   service account). Every SSH command runs the login shell, and root's
#   ~/.bashrc on a developer machine (pyenv, nvm, ...) can cost more CPU
#   than the work itself.
# - Every namespace gets a permanent neighbour entry for every other one.
#   The kernel's ARP table and its limit (gc_thresh3, 1024 by default) are
#   shared by all the namespaces of the machine: 51 namespaces that each
#   learn 50 neighbours overflow it ("neighbor table overflow!" in dmesg),
#   and the packets of whichever host meets the full table are dropped
#   (about 180 of 825 probes, in both tools, before this was done).
#   Permanent entries are not counted against that limit.
#
# Output: per-phase times of both, and a markdown table on standard output.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
PORTOLAN=${1:-$ROOT/target/release/portolan}
HOSTS=${2:-50}
ANSIBLE_VENV=$ROOT/target/bench-tools/ansible

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 2; }
[ -x /usr/sbin/sshd ] || { echo "sshd is missing: apt-get install -y openssh-server" >&2; exit 2; }
[ -x "$PORTOLAN" ] || { echo "$PORTOLAN is missing: cargo build --release -p portolan" >&2; exit 2; }
[ "$HOSTS" -ge 10 ] && [ "$HOSTS" -le 200 ] || { echo "HOSTS must be 10 to 200" >&2; exit 2; }
PORTOLAN=$(realpath "$PORTOLAN")
if [ ! -x "$ANSIBLE_VENV/bin/ansible-playbook" ]; then
    python3 -m venv "$ANSIBLE_VENV"
    "$ANSIBLE_VENV/bin/pip" install --quiet --disable-pip-version-check ansible-core
fi
# Not `| head -1`: under pipefail, the broken pipe ansible-playbook meets would end the script.
ANSIBLE_VERSION=$("$ANSIBLE_VENV/bin/ansible-playbook" --version)
ANSIBLE_VERSION=${ANSIBLE_VERSION%%$'\n'*}

ID=flb$$
WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
NAMESPACES=()
BENCH_USER=""
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    # The throwaway user: only the one this run made, by the name it recorded.
    # Its sessions first: sshd's per-connection processes outlive the killed
    # listeners (and the deleted namespaces, whose links no longer carry the
    # close), and userdel refuses a user with processes.
    if [ -n "$BENCH_USER" ]; then
        pkill -u "$BENCH_USER" 2>/dev/null || true
        for _ in $(seq 50); do pgrep -u "$BENCH_USER" >/dev/null || break; sleep 0.1; done
        pkill -KILL -u "$BENCH_USER" 2>/dev/null || true
        userdel "$BENCH_USER" 2>/dev/null || echo "could not remove user $BENCH_USER" >&2
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
# sshd's privilege separation directory: the system's, kept (every sshd
# running needs it; removing it breaks them all).
mkdir -p /run/sshd

# The system: component sizes, then the hosts in order.
SIZES=(lb:$((HOSTS / 10)) web:$((HOSTS * 3 / 10)) app:$((HOSTS * 3 / 10)) db:$((HOSTS / 5)))
USED=0; for s in "${SIZES[@]}"; do USED=$((USED + ${s#*:})); done
SIZES+=(cache:$((HOSTS - USED)))

ssh-keygen -q -t ed25519 -N "" -C "" -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N "" -C "" -f "$WORK/user_key"
cp "$WORK/user_key.pub" "$WORK/authorized_keys"

BR=$ID-br
ip netns add "$BR"; NAMESPACES+=("$BR")
ip -n "$BR" link add br0 type bridge
ip -n "$BR" link set br0 up
attach() { # NS INDEX ADDRESS
    ip netns add "$1"; NAMESPACES+=("$1")
    ip link add "fl$2" netns "$BR" type veth peer name eth0 netns "$1"
    ip -n "$BR" link set "fl$2" master br0 up
    ip -n "$1" addr add "$3/24" dev eth0
    ip -n "$1" link set lo up
    ip -n "$1" link set eth0 up
    ip netns exec "$1" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
}
CLIENT=$ID-client
attach "$CLIENT" 0 198.18.8.1

# The login of both tools: a throwaway user with /bin/sh (see above).
name=ptl-$ID
if id "$name" >/dev/null 2>&1; then echo "user $name exists: not ours, stopping" >&2; exit 2; fi
# Password "*": no password login, but not a locked account (which sshd refuses without PAM).
useradd --password "*" --no-create-home --home-dir "$WORK/home" --shell /bin/sh --user-group "$name"
BENCH_USER=$name
mkdir -m 700 "$WORK/home"
chown "$BENCH_USER:" "$WORK/home"

: > "$WORK/known_hosts"
INVENTORY="$WORK/hosts.ini"
: > "$INVENTORY"
{
    echo "deployment: 1"
    echo "name: fleet-bench"
    echo "components:"
} > "$WORK/deployment.yaml"
n=0
for s in "${SIZES[@]}"; do
    component=${s%%:*}; count=${s#*:}
    echo "[$component]" >> "$INVENTORY"
    addresses=()
    for _ in $(seq "$count"); do
        n=$((n + 1)); ip=198.18.8.$((n + 10)); ns=$ID-h$n
        attach "$ns" "$n" "$ip"
        cat > "$WORK/sshd_$n" <<EOF
ListenAddress $ip
HostKey $WORK/host_key
PidFile none
AuthorizedKeysFile $WORK/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 64
LogLevel ERROR
EOF
        ip netns exec "$ns" /usr/sbin/sshd -D -e -f "$WORK/sshd_$n" 2>>"$WORK/sshd.log" &
        PIDS+=($!)
        echo "$ip $(cat "$WORK/host_key.pub")" >> "$WORK/known_hosts"
        echo "$component-$n ansible_host=$ip" >> "$INVENTORY"
        addresses+=("$ip")
    done
    echo "  $component: {addresses: [$(IFS=,; echo "${addresses[*]}")]}" >> "$WORK/deployment.yaml"
done
cat > "$WORK/portolan.yaml" <<EOF
portolan: 1
system: {name: Fleet benchmark}
components:
  - {id: lb, name: Load balancer}
  - {id: web, name: Web}
  - {id: app, name: App}
  - {id: db, name: Database, kind: dependency}
  - {id: cache, name: Cache}
flows:
  - {from: lb, to: web, protocol: tcp, port: 8080}
  - {from: web, to: app, protocol: tcp, port: [9000, 9001]}
  - {from: web, to: cache, protocol: udp, port: 11211}
  - {from: app, to: db, protocol: tcp, port: 5432}
  - {from: app, to: cache, protocol: udp, port: 11211}
EOF
cat > "$WORK/ssh_config" <<EOF
Host *
  User $BENCH_USER
  IdentityFile $WORK/user_key
  IdentitiesOnly yes
  UserKnownHostsFile $WORK/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  LogLevel ERROR
EOF
# Permanent neighbour entries between every two namespaces (see above).
declare -A MAC
for ns in "${NAMESPACES[@]}"; do
    [ "$ns" = "$BR" ] && continue
    MAC[$ns]=$(ip -n "$ns" -br link show eth0 | awk '{print $3}')
done
for ns in "${!MAC[@]}"; do
    for other in "${!MAC[@]}"; do
        [ "$ns" = "$other" ] && continue
        address=$(ip -n "$other" -4 -br addr show eth0 | awk '{print $3}')
        echo "neigh replace ${address%/*} lladdr ${MAC[$other]} dev eth0 nud permanent"
    done | ip -n "$ns" -batch -
done
# Every sshd up before timing starts.
for i in $(seq "$n"); do
    ip=198.18.8.$((i + 10))
    for _ in $(seq 100); do
        ip netns exec "$CLIENT" bash -c "exec 3<>/dev/tcp/$ip/22" 2>/dev/null && break
        sleep 0.05
    done
done
echo "lab: $n hosts with sshd, client 198.18.8.1; $ANSIBLE_VERSION" >&2

now() { date +%s.%N; }

# portolan preflight
start=$(now)
set +e
ip netns exec "$CLIENT" env COLUMNS=200 "$PORTOLAN" preflight "$WORK/portolan.yaml" \
    -d "$WORK/deployment.yaml" --inventory "$INVENTORY" -F "$WORK/ssh_config" \
    --concurrency "$n" --timeout 1000 --retries 0 -f html -o "$WORK/portolan.html" \
    > "$WORK/portolan.out" 2> "$WORK/portolan.err"
portolan_status=$?
set -e
portolan_s=$(echo "$(now) - $start" | bc)
grep -E '^(Probes|Result|Time):|host\(s\) checked' "$WORK/portolan.out" >&2 || cat "$WORK/portolan.out" "$WORK/portolan.err" >&2
portolan_phases=$(sed -n 's/.*Time: //p' "$WORK/portolan.out")
# Directories the run left: only this run's user owns any.
leftover=$(find /tmp -maxdepth 1 -name 'portolan-preflight.*' -user "$BENCH_USER" | wc -l)

# Ansible, with each task's start time stamped as its header streams out.
mkdir -p "$WORK/results"
start=$(now)
set +e
ip netns exec "$CLIENT" env \
    ANSIBLE_HOST_KEY_CHECKING=True ANSIBLE_PIPELINING=True ANSIBLE_FORKS="$n" \
    ANSIBLE_SSH_ARGS="-F $WORK/ssh_config -o ControlMaster=auto -o ControlPersist=60s" \
    ANSIBLE_CONTROL_PATH_DIR="$WORK/cp" ANSIBLE_LOCAL_TEMP="$WORK/ansible-tmp" \
    ANSIBLE_NOCOLOR=1 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 \
    "$ANSIBLE_VENV/bin/ansible-playbook" -i "$INVENTORY" "$HERE/preflight-playbook.yml" \
    -e "portolan=$PORTOLAN spec=$WORK/portolan.yaml deployment=$WORK/deployment.yaml results=$WORK/results" \
    2>&1 | while IFS= read -r line; do printf '%s %s\n' "$(now)" "$line"; done > "$WORK/ansible.out"
ansible_status=${PIPESTATUS[0]}
set -e
ansible_s=$(echo "$(now) - $start" | bc)
ansible_results=$(find "$WORK/results" -maxdepth 1 -name "*.json" | wc -l)
# Per task: from its header to the next header (or the end).
ansible_phases=$(awk -v end="$(now)" '
    / (TASK|PLAY RECAP) \[?/ {
        if (name != "") printf "%s %.2f s, ", name, $1 - t
        t = $1; name = $0; sub(/^[^ ]+ (TASK \[|PLAY RECAP)/, "", name); sub(/\].*/, "", name)
        if ($0 ~ /PLAY RECAP/) name = ""
    }' "$WORK/ansible.out" | sed 's/, $//')
grep -E 'PLAY RECAP' -A3 "$WORK/ansible.out" | cut -d' ' -f2- >&2 || true

ratio=$(echo "scale=1; $ansible_s / $portolan_s" | bc)
cat <<EOF

| tool | hosts | exit | seconds | notes |
|---|---|---|---|---|
| portolan preflight | $n | $portolan_status | $(printf %.2f "$portolan_s") | $portolan_phases; $leftover directories left |
| ansible-playbook ($ANSIBLE_VERSION) | $n | $ansible_status | $(printf %.2f "$ansible_s") | $ansible_results results files; $ansible_phases |

portolan preflight is ${ratio}x faster.
EOF
