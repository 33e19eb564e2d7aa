# scripts/bench.d/common.sh — shared by scripts/bench-auth and scripts/bench-scale (sourced).
# The caller sets: name (for messages), keep (0|1), helper (helper.py), and calls
# common_init once. Processes it starts are recorded in live[] and stopped at exit.
# shellcheck shell=bash disable=SC2034,SC2154 # variables shared with the sourcing script

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$name" "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
number() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 needs a number, got '$2'"; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"; }

# install PACKAGE COMMAND: apt-get install PACKAGE (as root) when COMMAND is missing.
install_for() {
  command -v "$2" >/dev/null 2>&1 && return 0
  ((EUID == 0)) || die "'$2' missing: run as root to install the Debian package '$1' (or scripts/setup --bench)"
  need apt-get "install the Debian package '$1' by hand"
  say "installing the Debian package $1"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$1" >/dev/null 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$1" >/dev/null; } ||
    die "could not install the Debian package '$1'"
  command -v "$2" >/dev/null 2>&1 || die "'$2' still missing after installing '$1'"
  # The benchmarks start their own daemons on free loopback ports; a packaged service that
  # the install started (unbound on port 53, knot) is not needed (as scripts/setup does).
  if command -v systemctl >/dev/null 2>&1 && [[ $1 == unbound || $1 == knot ]]; then
    systemctl disable --now "$1" >/dev/null 2>&1 || true
  fi
}

# build_tools: sets edgemx_bin, load_bin, sink_bin (cargo build --release where not given).
build_tools() {
  if [[ -z $edgemx_bin || -z $load_bin || -z $sink_bin ]]; then
    need cargo "install the Rust toolchain (cargo 1.95)"
    say "building: cargo build --release -p edgemx -p edgemx-tests --bin edgemx --bin bench-load --bin bench-tls"
    (cd "$repo" && cargo build -q --release -p edgemx -p edgemx-tests --bin edgemx --bin bench-load --bin bench-tls) ||
      die "cargo build --release failed"
    local target
    target=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    [[ -n $edgemx_bin ]] || edgemx_bin=$target/release/edgemx
    [[ -n $load_bin ]] || load_bin=$target/release/bench-load
    [[ -n $sink_bin ]] || sink_bin=$target/release/bench-tls
  fi
  local b
  for b in "$edgemx_bin" "$load_bin" "$sink_bin"; do [[ -x $b ]] || die "'$b' not found or not executable"; done
}

declare -A live=() # pid -> what
common_init() { # work directory and cleanup
  work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/edgemx-$name.XXXXXX")
  chmod 755 "$work"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

gone() { # pid seconds: wait until pid has exited, at most seconds
  local deadline=$((EPOCHSECONDS + $2))
  while kill -0 "$1" 2>/dev/null; do
    ((EPOCHSECONDS < deadline)) || return 1
    sleep 0.05
  done
}

stop_pid() { # pid: SIGTERM, then SIGKILL after 30 s
  kill -TERM "$1" 2>/dev/null || true
  gone "$1" 30 || { echo "$name: ${live[$1]-pid $1} ignored SIGTERM, killing it" >&2; kill -KILL "$1" 2>/dev/null || true; }
  wait "$1" 2>/dev/null || true
  unset "live[$1]"
}

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  set +e
  for p in "${!live[@]}"; do stop_pid "$p"; done
  if ((rc == 0 && keep == 0)); then
    rm -rf "$work"
  else
    echo "$name: work directory (logs, queues) kept: $work" >&2
  fi
  exit "$rc"
}

wait_port() { # port pid what log: poll until something accepts on 127.0.0.1:port
  local deadline=$((EPOCHSECONDS + 30))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || die "$3 exited before listening on 127.0.0.1:$1; see $4"
    ((EPOCHSECONDS < deadline)) || die "$3 not listening on 127.0.0.1:$1 after 30 s; see $4"
    sleep 0.05
  done
}

freeport() { python3 "$helper" freeport; }
json() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {"d": d}))' "$1" "$2"; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

# --- the sink: one for the whole run (bench-tls sink, exactly once by X-Bench-Seq) --------

sent=0
start_sink() { # expected_total
  sink_port=$(freeport)
  "$sink_bin" sink "$sink_port" plain "$1" 7200 "$work/sink.progress" >"$work/sink.json" 2>"$work/sink.err" &
  sink_pid=$! live[$!]=sink
  wait_port "$sink_port" "$sink_pid" sink "$work/sink.err"
}
progress() { # field: 1 distinct, 2 duplicates
  local v
  v=$(cut -d' ' -f"$1" "$work/sink.progress" 2>/dev/null || true)
  echo "${v:-0}"
}
arrived() { # count timeout: wait until the sink has count distinct messages; 1 on timeout
  local deadline=$((EPOCHSECONDS + $2))
  until (($(progress 1) >= $1)); do
    ((EPOCHSECONDS < deadline)) || return 1
    sleep 0.01
  done
}
finish_sink() { # sets sink_verdict; 1 when the sink did not get exactly every message once
  local sk
  gone "$sink_pid" 30 || true
  stop_pid "$sink_pid"
  sk=$(cat "$work/sink.json")
  [[ -n $sk ]] || { sink_verdict="sink reported nothing (see $work/sink.err)"; return 1; }
  sink_verdict="$(json "$sk" 'd["messages"]') received, $(json "$sk" 'd["distinct"]') distinct of $(json "$sk" 'd["expected"]'), $(json "$sk" 'd["duplicates"]') duplicates"
  (($(json "$sk" 'd["distinct"]') == $(json "$sk" 'd["expected"]') && $(json "$sk" 'd["duplicates"]') == 0 &&
    $(json "$sk" 'd["messages"]') == $(json "$sk" 'd["expected"]')))
}

# --- edgemx ------------------------------------------------------------------------------

# start_edgemx DIR CONNECTIONS EXTRA_TOML: a fresh data_dir, relaying example.com to the sink;
# sets mta_port, mta_pid, admin_port.
start_edgemx() {
  local d=$1 conns=$2
  mkdir -p "$d"
  mta_port=$(freeport) admin_port=$(freeport)
  while [[ $admin_port == "$mta_port" ]]; do admin_port=$(freeport); done
  # All load comes from 127.0.0.1 over reused connections: lift the per-IP connection and
  # per-session message and command limits (as scripts/bench does; max_commands would close
  # a session after about 330 messages) and keep max_connections well above the load so
  # that the stress threshold (0.8 of it) never shortens the timeouts.
  cat >"$d/edgemx.toml" <<EOF
hostname = "bench.example.net"
data_dir = "$d/data"

[[listener]]
address = "127.0.0.1:$mta_port"

[[domain]]
name = "example.com"
next_hops = ["127.0.0.1:$sink_port"]

[admin]
address = "127.0.0.1:$admin_port"

[limits]
max_connections = $conns
max_connections_per_ip = $conns
max_messages_per_session = 1000000
max_commands = 10000000
$3
EOF
  "$edgemx_bin" serve --config "$d/edgemx.toml" >"$d/edgemx.log" 2>&1 &
  mta_pid=$! live[$!]=edgemx
  wait_port "$mta_port" "$mta_pid" edgemx "$d/edgemx.log"
}

cpu_ticks() { # utime + stime of pid, in clock ticks
  awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
vmhwm_mib() { awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
metric() { # name-and-labels: the value on the admin listener's /metrics (0 when absent)
  python3 - "$admin_port" "$1" <<'EOF'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
print(next((l.split()[-1] for l in text.splitlines() if l.startswith(sys.argv[2] + " ")), "0"))
EOF
}

# relay_run SESSIONS MESSAGES SOURCE HELO FROM: load edgemx (already started) with bench-load,
# wait for the sink, and set: r_json (bench-load's), r_e2e (msg/s until the sink had them
# all), r_cpu (edgemx CPU ms per message over that window), r_ok (1 when every message was
# accepted and arrived).
relay_run() {
  local t0 t1 c0 c1 first=$sent
  c0=$(cpu_ticks "$mta_pid")
  t0=$EPOCHREALTIME
  r_json=$("$load_bin" send "127.0.0.1:$mta_port" "$1" "$2" "$first" "$3" "$4" "$5" rcpt@example.com) ||
    die "bench-load send failed"
  sent=$((first + $2))
  r_ok=1
  local accepted
  accepted=$(json "$r_json" 'd["accepted"]')
  ((accepted == $2)) || { r_ok=0; echo "$name: not every message accepted: $r_json" >&2; }
  # Wait for what was accepted (a refused message never arrives; the sink's total shows it).
  arrived "$((first + accepted))" "$timeout" ||
    { r_ok=0; echo "$name: the sink has $(progress 1) of $((first + accepted)) messages after ${timeout}s" >&2; }
  t1=$EPOCHREALTIME
  c1=$(cpu_ticks "$mta_pid")
  r_e2e=$(calc %.1f "$2 / ($t1 - $t0)")
  r_cpu=$(calc %.3f "($c1 - $c0) * 10 / $2")
}
