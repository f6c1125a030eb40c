#!/usr/bin/env bash
# Kensho streams across hosts through a KSP-11 relay (PROTOCOL.md §11), with network namespaces
# as the hosts:
#
#   kr-a-PID  10.231.1.2 ──veth── 10.231.1.1  kr-relay-PID  10.231.2.1 ──veth── 10.231.2.2  kr-b-PID
#   (producer agent;                         (kensho-bench relay                        (consumer agent)
#    later kensho-bench run)                  on 0.0.0.0:8080, token)
#
# A and B have no route to each other: every frame goes through the relay. Steps:
#   1. the Swift relay (`kensho-bench relay`) starts in the relay namespace;
#   2. the consumer agent (Adapters/node/relay-agent.mjs) starts in B and connects; it calls
#      `numbers` on the producer, again every second until answered;
#   3. the producer agent starts in A, so that the consumer's first calls go unanswered;
#   4. the consumer must get the whole stream, 0..999 then {count: 1000} (its exit 0);
#      the producer then stops on SIGTERM (exit 0);
#   5. from A, `kensho-bench run Scenarios/relay-streams.json --relay-url ws://10.231.1.1:PORT/`
#      must pass (exit 0): its buses, and its KSP-11 probe, reach the relay across the link;
#   6. the relay stops on SIGTERM (exit 0) and its counters are printed.
#
# Usage: Tests/netns/relay-across-hosts.sh   (as root; from any folder)
# Environment: KENSHO_BENCH  the kensho-bench binary (default .build/debug/kensho-bench of this
#                            repository, wherever the script is called from; a relative path
#                            is taken from the caller's folder, a bare name from PATH)
#              NODE          node (default: node on PATH)
#              KEEP_LOGS=1   keep the folder of logs and reports even when the test passes
#
# Exit codes: 0 passed; 1 failed (a step went wrong or passed its deadline, or a prerequisite
# is missing: the kensho-bench binary, node, the `ws` library); 77 skipped, when namespaces
# cannot be made here (not root, no `ip`, `ip netns add` or a veth pair refused), with one line
# `SKIP: <reason>`; 130/143 interrupted by SIGINT/SIGTERM. Whatever the outcome, every process
# started is stopped and reaped and the three namespaces are deleted. Every wait has a deadline,
# all within 150 s of the start; with stopping and cleanup the run stays under 3 minutes.
# (A pass takes about 35 s, most of it kensho-bench's relay-streams scenario.)
set -u -o pipefail

readonly STARTED=$SECONDS
readonly BUDGET=150 # seconds for the waits of the whole run; stopping and cleanup add at most ~15 s
CALLER_DIR=$PWD
SCRIPT_DIR=${BASH_SOURCE[0]%/*}
[[ $SCRIPT_DIR == "${BASH_SOURCE[0]}" ]] && SCRIPT_DIR=.
REPO=$(cd "$SCRIPT_DIR/../.." && pwd -P) || { echo "FAIL: cannot find the repository" >&2; exit 1; }

NS_R="kr-relay-$$"
NS_A="kr-a-$$"
NS_B="kr-b-$$"
IF_RA="vra$$" IF_A="va$$" IF_RB="vrb$$" IF_B="vb$$" # at most 11 characters (a pid has at most 7 digits)
readonly NET_A=10.231.1 NET_B=10.231.2
readonly PORT=8080 # PROTOCOL.md §11's default; the namespace is new, so it is free
readonly CHUNKS=1000
readonly CONSUMER_TIMEOUT_MS=30000

WORK=""
NAMESPACES=()   # created, in order
PROCS=()        # names of processes started, in order
declare -A PID  # name → pid
declare -A RC   # name → exit status, once reaped
declare -A STEP_SECONDS
STEP_ORDER=()

log() { printf '[%3ds] %s\n' $((SECONDS - STARTED)) "$*"; }
skip() { echo "SKIP: $*"; exit 77; }

fail() {
  echo "FAIL: $*" >&2
  if [[ -n $WORK && -d $WORK ]]; then
    local f
    for f in "$WORK"/*.out "$WORK"/*.err; do
      [[ -s $f ]] || continue
      echo "---- ${f##*/} (last 15 lines)" >&2
      tail -n 15 "$f" >&2
    done
  fi
  exit 1
}

# The earlier of now + $1 seconds and the end of the budget.
deadline_in() {
  local at=$((SECONDS + $1)) limit=$((STARTED + BUDGET))
  echo $((at < limit ? at : limit))
}

step_begin() { STEP_NAME=$1; STEP_NS=$(date +%s%N); log "STEP: $1"; }
step_end() {
  local ms=$((($(date +%s%N) - STEP_NS) / 1000000))
  STEP_SECONDS[$STEP_NAME]=$ms
  STEP_ORDER+=("$STEP_NAME")
  log "  ok ($ms ms)"
}

# start NAME NAMESPACE COMMAND...: runs COMMAND in NAMESPACE in the background, its stdout and
# stderr in $WORK/NAME.out and .err. (`ip netns exec` execs the command: the pid is its own.)
start() {
  local name=$1 ns=$2
  shift 2
  ip netns exec "$ns" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null &
  PID[$name]=$!
  PROCS+=("$name")
  local shown=() arg
  for arg in "$@"; do
    if [[ $arg == "$TOKEN" ]]; then shown+=("<token>")
    elif [[ $arg == "$REPO"/* ]]; then shown+=("${arg#"$REPO"/}")
    else shown+=("$arg"); fi
  done
  log "  started $name (pid ${PID[$name]}) in $ns: ${shown[*]}"
}

running() { [[ -z ${RC[$1]+set} ]] && kill -0 "${PID[$1]}" 2>/dev/null; }

# reap NAME: records its exit status (it has exited).
reap() {
  [[ -n ${RC[$1]+set} ]] && return 0
  local status=0
  wait "${PID[$1]}" 2>/dev/null || status=$?
  RC[$1]=$status
}

# wait_exit NAME SECONDS: waits for NAME to exit; false at the deadline (it keeps running).
wait_exit() {
  local name=$1 until
  until=$(deadline_in "$2")
  while running "$name"; do
    ((SECONDS < until)) || return 1
    sleep 0.1
  done
  reap "$name"
}

# wait_line NAME STREAM REGEX SECONDS: waits until NAME's stdout or stderr (out|err) has a line
# matching REGEX; fails at the deadline or when NAME exits first.
wait_line() {
  local name=$1 file="$WORK/$1.$2" regex=$3 until
  until=$(deadline_in "$4")
  while ! grep -Eq -- "$regex" "$file" 2>/dev/null; do
    if ! running "$name"; then
      grep -Eq -- "$regex" "$file" 2>/dev/null && return 0
      reap "$name"
      fail "$name exited (status ${RC[$name]}) before printing /$regex/"
    fi
    ((SECONDS < until)) || fail "$name printed no /$regex/ within $4 s"
    sleep 0.1
  done
}

# stop NAME SECONDS: SIGTERM, then SIGKILL past SECONDS; records the exit status.
stop() {
  local name=$1
  running "$name" || { reap "$name"; return 0; }
  kill -TERM "${PID[$name]}" 2>/dev/null
  local until=$((SECONDS + $2))
  while running "$name" && ((SECONDS < until)); do sleep 0.1; done
  if running "$name"; then
    log "  $name ignored SIGTERM for $2 s: SIGKILL"
    kill -KILL "${PID[$name]}" 2>/dev/null
  fi
  reap "$name"
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  local name ns pid left
  for ((i = ${#PROCS[@]} - 1; i >= 0; i--)); do
    name=${PROCS[i]}
    if running "$name"; then
      log "cleanup: stopping $name (pid ${PID[$name]})"
      stop "$name" 3
    else
      reap "$name"
    fi
  done
  for ns in "${NAMESPACES[@]}"; do
    # Anything still in a namespace of ours is a child of one of ours: end it by its id.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      log "cleanup: pid $pid still in $ns: SIGKILL"
      kill -KILL "$pid" 2>/dev/null
    done
    ip netns del "$ns" 2>/dev/null || { sleep 0.5; ip netns del "$ns" 2>/dev/null; }
  done
  for name in "$IF_RA" "$IF_RB" "$IF_A" "$IF_B"; do # only if a veth was left in this namespace
    ip link show "$name" >/dev/null 2>&1 && ip link del "$name" 2>/dev/null
  done
  if ((${#NAMESPACES[@]} > 0)); then
    left=$(ip netns list 2>/dev/null | awk -v a="$NS_R" -v b="$NS_A" -v c="$NS_B" '$1 == a || $1 == b || $1 == c { print $1 }')
    if [[ -n $left ]]; then
      echo "FAIL: namespaces left behind: $left" >&2
      ((status == 0)) && status=1
    else
      log "cleanup: namespaces ${NAMESPACES[*]} deleted; no process left"
    fi
  fi
  if [[ -n $WORK && -d $WORK ]]; then
    if ((status == 0 || status == 77)) && [[ ${KEEP_LOGS:-} != 1 ]]; then
      rm -rf "$WORK"
    else
      log "logs and reports kept in $WORK"
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo; log "interrupted (SIGINT)"; exit 130' INT
trap 'log "terminated (SIGTERM)"; exit 143' TERM

# A binary: an absolute path, a relative one (from the caller's folder), or a name on PATH.
resolve() {
  case $1 in
    /*) echo "$1" ;;
    */*) echo "$CALLER_DIR/$1" ;;
    *) command -v -- "$1" ;;
  esac
}

# 0. What this needs ----------------------------------------------------------------------------

((EUID == 0)) || skip "not root (network namespaces need root)"
command -v ip >/dev/null 2>&1 || skip "no \`ip\` command (iproute2)"
ip netns list >/dev/null 2>&1 || skip "\`ip\` has no netns support"

if [[ -n ${KENSHO_BENCH:-} ]]; then BENCH=$(resolve "$KENSHO_BENCH"); else BENCH="$REPO/.build/debug/kensho-bench"; fi
NODE_BIN=$(resolve "${NODE:-node}") || NODE_BIN=""
[[ -n $BENCH && -x $BENCH ]] || fail "no kensho-bench binary at ${BENCH:-${KENSHO_BENCH:-}} (build it, or set KENSHO_BENCH)"
[[ -n $NODE_BIN && -x $NODE_BIN ]] || fail "no node (${NODE:-node}): install node 20, or set NODE"
AGENT="$REPO/Adapters/node/relay-agent.mjs"
SCENARIO="$REPO/Scenarios/relay-streams.json"
[[ -f $AGENT ]] || fail "missing $AGENT"
[[ -f $SCENARIO ]] || fail "missing $SCENARIO"
ws_problem=$("$NODE_BIN" --input-type=module -e "
  import { loadWs } from '$REPO/Adapters/node/ws-lib.mjs';
  try { loadWs(); } catch (e) { console.log(e.message); }" 2>&1) || fail "node cannot run: $ws_problem"
[[ -z $ws_problem ]] || fail "$ws_problem"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kr-netns.XXXXXX") || fail "cannot make a temporary folder"
TOKEN=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
cd "$REPO" || fail "cannot enter $REPO"
log "kensho-bench: $BENCH"
log "node: $NODE_BIN ($("$NODE_BIN" --version))"
log "logs: $WORK"

# 1. Three hosts ------------------------------------------------------------------------------

step_begin "namespaces $NS_R, $NS_A, $NS_B"
for ns in "$NS_R" "$NS_A" "$NS_B"; do
  if ! err=$(ip netns add "$ns" 2>&1); then
    ((${#NAMESPACES[@]} == 0)) && skip "cannot create a network namespace: ${err:-ip netns add failed}"
    fail "cannot create namespace $ns: $err"
  fi
  NAMESPACES+=("$ns")
  ip -n "$ns" link set lo up || fail "cannot bring lo up in $ns"
done
step_end

step_begin "veth links: $NS_A $NET_A.2/24 <-> $NET_A.1/24 $NS_R $NET_B.1/24 <-> $NET_B.2/24 $NS_B"
err=$(ip link add "$IF_RA" netns "$NS_R" type veth peer name "$IF_A" netns "$NS_A" 2>&1) \
  || skip "cannot create a veth pair: $err"
err=$(ip link add "$IF_RB" netns "$NS_R" type veth peer name "$IF_B" netns "$NS_B" 2>&1) \
  || skip "cannot create a veth pair: $err"
ip -n "$NS_R" addr add "$NET_A.1/24" dev "$IF_RA" &&
  ip -n "$NS_R" addr add "$NET_B.1/24" dev "$IF_RB" &&
  ip -n "$NS_A" addr add "$NET_A.2/24" dev "$IF_A" &&
  ip -n "$NS_B" addr add "$NET_B.2/24" dev "$IF_B" &&
  ip -n "$NS_R" link set "$IF_RA" up && ip -n "$NS_R" link set "$IF_RB" up &&
  ip -n "$NS_A" link set "$IF_A" up && ip -n "$NS_B" link set "$IF_B" up ||
  fail "cannot configure the veth links"
# A and B reach the relay only; no route between them.
if ip -n "$NS_A" route get "$NET_B.2" >/dev/null 2>&1; then fail "$NS_A has a route to $NS_B: the test needs them apart"; fi
if ip -n "$NS_B" route get "$NET_A.2" >/dev/null 2>&1; then fail "$NS_B has a route to $NS_A: the test needs them apart"; fi
log "  $NS_A and $NS_B have no route to each other: all traffic goes through the relay"
step_end

URL_A="ws://$NET_A.1:$PORT/"
URL_B="ws://$NET_B.1:$PORT/"

# 2. The relay --------------------------------------------------------------------------------

step_begin "Swift relay in $NS_R on 0.0.0.0:$PORT (token required)"
start relay "$NS_R" "$BENCH" relay --listen "0.0.0.0:$PORT" --token "$TOKEN"
wait_line relay out '^listening ws://' 20
log "  relay: $(head -n 1 "$WORK/relay.out"); from $NS_A: $URL_A, from $NS_B: $URL_B"
step_end

# 3. The consumer first, in B -----------------------------------------------------------------

step_begin "consumer agent in $NS_B -> $URL_B"
start consumer "$NS_B" "$NODE_BIN" "$AGENT" --url "$URL_B" --token "$TOKEN" --name netns-consumer \
  consumer --target netns-producer --chunks "$CHUNKS" --timeout-ms "$CONSUMER_TIMEOUT_MS"
wait_line consumer err 'connected to ws://' 20
log "  consumer connected; calling numbers on netns-producer, who is not there yet"
step_end

# 4. The producer, in A -----------------------------------------------------------------------

step_begin "producer agent in $NS_A -> $URL_A"
start producer "$NS_A" "$NODE_BIN" "$AGENT" --url "$URL_A" --token "$TOKEN" --name netns-producer \
  producer --chunks "$CHUNKS"
wait_line producer out '"event":"connected"' 20
log "  producer connected"
step_end

# 5. The stream from A to B, through the relay --------------------------------------------------

step_begin "consumer in $NS_B receives $CHUNKS chunks from the producer in $NS_A"
wait_exit consumer $((CONSUMER_TIMEOUT_MS / 1000 + 10)) || fail "the consumer did not finish within its deadline"
result=$(tail -n 1 "$WORK/consumer.out")
log "  consumer: ${result:-<no result line>}"
((RC[consumer] == 0)) || fail "the consumer exited ${RC[consumer]}: $(grep -h 'FAIL' "$WORK/consumer.err" | tail -n 1)"
[[ $result == *'"ok":true'* && $result == *"\"chunks\":$CHUNKS,"* ]] || fail "the consumer exited 0 but its result is not ok"
stop producer 5
grep -h '"event":"served"' "$WORK/producer.out" | sed 's/^/          producer: /'
((RC[producer] == 0)) || fail "the producer exited ${RC[producer]} on SIGTERM (expected 0)"
grep -q '"consumer":"netns-consumer","chunks":'"$CHUNKS"',"ended":true' "$WORK/producer.out" ||
  fail "the producer did not report a finished stream of $CHUNKS chunks to netns-consumer"
step_end

# 6. kensho-bench's relay scenario, from A ------------------------------------------------------

step_begin "kensho-bench run Scenarios/relay-streams.json from $NS_A -> $URL_A"
start bench "$NS_A" "$BENCH" run "$SCENARIO" --relay-url "$URL_A" --relay-token "$TOKEN" \
  --out "$WORK/reports" --deadline 90 -q
if ! wait_exit bench 100; then
  stop bench 5
  fail "kensho-bench run did not finish within 100 s"
fi
sed 's/^/          /' "$WORK/bench.out"
((RC[bench] == 0)) || fail "kensho-bench run exited ${RC[bench]} (reports in $WORK/reports)"
step_end

# 7. The relay stops --------------------------------------------------------------------------

step_begin "relay stops on SIGTERM"
stop relay 5
log "  relay counters: $(grep -h '^{' "$WORK/relay.err" | tail -n 1)"
((RC[relay] == 0)) || fail "the relay exited ${RC[relay]} on SIGTERM (expected 0)"
step_end

echo
log "PASS: a stream crossed $NS_A -> $NS_R -> $NS_B, and relay-streams passed from $NS_A"
for name in "${STEP_ORDER[@]}"; do printf '        %7d ms  %s\n' "${STEP_SECONDS[$name]}" "$name"; done
exit 0
