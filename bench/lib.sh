# Shared by the load benchmarks (bench/run, bench/runners): tools, a work dir cleaned up on
# exit, free ports, CPU pinning, the nginx upstream answering "hello\n", wrk runs and medians.
# Source it after setting: connections, duration, warmup, pin (0|1), keep (0|1), workers.
# shellcheck shell=bash

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '== %s\n' "$*" >&2; }

# ---- tools ------------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
        # nginx-light is gone from newer Debian releases: plain nginx then.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]/nginx-light/nginx}" >/dev/null
    fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# ---- work dir, cleanup ------------------------------------------------------------------------
work=$(mktemp -d /tmp/ferrogate-bench.XXXXXX)
chmod 755 "$work"   # nginx workers run as nobody
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
    if [ "$keep" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- ports and CPUs ---------------------------------------------------------------------------
port_free() { [ -z "$(ss -Hltn "sport = :$1")" ]; }
next_port=18000
take_port() {   # take_port VAR : sets VAR to a free 127.0.0.1 port not handed out before
    while ! port_free "$next_port"; do next_port=$((next_port + 1)); done
    printf -v "$1" '%s' "$next_port"; next_port=$((next_port + 1))
}

# Pinning (same for both proxies): the proxy under test gets CPUs 0..workers-1; wrk and the
# upstream share the last CPU. With workers >= CPUs the proxy spreads over every CPU (wrk and
# the upstream stay on the last one).
ncpu=$(nproc)
proxy_cpus="" load_cpus=""
if [ "$pin" = 1 ] && command -v taskset >/dev/null && [ "$ncpu" -ge 2 ]; then
    last=$((ncpu - 1))
    if [ "$workers" -lt "$ncpu" ]; then proxy_cpus="0-$((workers - 1))"; else proxy_cpus="0-$last"; fi
    load_cpus="$last"
fi
run_on() {   # run_on CPUS CMD... : CMD pinned to CPUS when pinning is on
    local c=$1; shift
    if [ -n "$c" ]; then taskset -c "$c" "$@"; else "$@"; fi
}
spawn() {   # spawn CPUS CMD... : like run_on, in the background; the pid goes to $pids and $last_pid
    local c=$1; shift
    if [ -n "$c" ]; then taskset -c "$c" "$@" & else "$@" & fi
    last_pid=$!; pids+=("$last_pid")
}

# ---- the upstream ------------------------------------------------------------------------------
# Directives shared by both nginx instances (temp paths inside the work dir, no pid file clash).
nginx_common() {   # nginx_common DIR WORKERS
    cat <<EOF
daemon off;
master_process on;
worker_processes $2;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
EOF
}
nginx_temp_paths() {
    local d=$1
    cat <<EOF
    client_body_temp_path $d/client_body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
EOF
}

write_upstream_config() {   # write_upstream_config PORT : nginx answering 200 "hello\n" on PORT
    mkdir -p "$work/upstream"
    { nginx_common "$work/upstream" 1; cat <<EOF
http {
$(nginx_temp_paths "$work/upstream")
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$1;
        location / { default_type text/plain; return 200 "hello\n"; }
    }
}
EOF
    } > "$work/upstream/nginx.conf"
}

# ---- start and measure ------------------------------------------------------------------------
wait_ready() {   # wait_ready NAME PORT PID [PATH] : until GET PATH (/hello) answers "hello" (PID must stay up)
    local i path=${4:-/hello}
    for i in $(seq 100); do
        kill -0 "$3" 2>/dev/null || { echo "$1 exited at start; see $work" >&2; keep=1; exit 1; }
        if [ "$(curl -s --max-time 1 "http://127.0.0.1:$2$path" 2>/dev/null)" = hello ]; then return 0; fi
        sleep 0.1
    done
    echo "$1 did not answer on 127.0.0.1:$2" >&2; exit 1
}

to_ms() {   # wrk latency (e.g. 850.00us, 1.23ms, 1.01s) -> milliseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}
# bench NAME PORT ROUND [PATH [HEADER [PIDS]]] :
#   prints "rps p99_ms requests errors p50_ms cpu_us switches"
# With PIDS (comma-separated) and `perf` at hand, the CPU time (user and kernel, perf's
# task-clock) and the context switches of those processes during the measured run are counted:
# cpu_us is that time per request in microseconds, switches the switches per request ("-" without
# PIDS). CPU time moves less than requests/s when other processes compete for the CPU (this
# machine's VM has no hardware counters, so instructions cannot be counted here; see
# bench/instructions).
bench() {
    local out=$work/wrk-$1-$3.txt rps p99 p50 reqs errs cpu=- cs=- path=${4:-/hello} header=() perf_pid=
    [ -n "${5:-}" ] && header=(-H "$5")
    run_on "$load_cpus" wrk -t1 -c"$connections" -d"$warmup" "${header[@]}" "http://127.0.0.1:$2$path" >/dev/null
    if [ -n "${6:-}" ] && command -v perf >/dev/null; then
        perf stat -x, -e task-clock,context-switches -p "$6" -o "$work/perf-$1-$3.txt" 2>/dev/null &
        perf_pid=$!
        sleep 0.2   # attached before the load starts
    fi
    run_on "$load_cpus" wrk -t1 -c"$connections" -d"$duration" --latency "${header[@]}" "http://127.0.0.1:$2$path" >"$out"
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
        cpu=$(awk -F, '$3 ~ /^task-clock/ {print $1}' "$work/perf-$1-$3.txt")   # milliseconds
        cs=$(awk -F, '$3 ~ /^context-switches/ {print $1}' "$work/perf-$1-$3.txt")
    fi
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    reqs=$(awk '/requests in/ {print $1}' "$out")
    errs=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$out")
    [ -n "$cpu" ] && [ "$cpu" != - ] && cpu=$(awk -v c="$cpu" -v n="$reqs" 'BEGIN {printf "%.1f", c * 1000 / n}')
    [ -n "$cs" ] && [ "$cs" != - ] && cs=$(awk -v c="$cs" -v n="$reqs" 'BEGIN {printf "%.2f", c / n}')
    echo "$rps $p99 $reqs $errs $p50 ${cpu:--} ${cs:--}"
}
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

