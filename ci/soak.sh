#!/usr/bin/env bash
# The soak: the release zerocast for SOAK_SECONDS (default 600) with the tone source, waves of
# 20 players joining and leaving (zerocast-load, each checks its audio is continuous), a
# publisher coming and going on live/p, and a push to nginx-rtmp whose upstream is killed and
# restarted every 2 minutes, and the hostile battery's attacks each wave (issue 19): players of
# made-up names (squatters), an HTTP flood and slow requests from two other addresses, a push to
# a host that does not resolve, a publisher that changes codec, recording into a directory
# capped at 8 MiB. zerocast's RSS, open descriptors and CPU time are sampled every
# 10 s; the script prints their slopes (per hour) and fails if zerocast dies, a player that did
# not leave was dropped or heard a gap, or a number grows without bound (RSS > 1 MiB/h or
# descriptors > 10/h after the first minute).
#
# For hours by hand: SOAK_SECONDS=14400 ci/run.sh soak
set -euo pipefail

# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

SOAK_SECONDS=${SOAK_SECONDS:-600}
WAVE_SECONDS=30
NGINX_RESTART_EVERY=120
SAMPLE_EVERY=10

say "soak: building the release zerocast and zerocast-load"
cargo build --release --locked --bin zerocast --bin zerocast-load
ZEROCAST="$TARGET_DIR/release/zerocast"
LOAD="$TARGET_DIR/release/zerocast-load"

WORK=$(mktemp -d /tmp/zerocast-soak.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [[ -n ${NGINX_PID:-} ]] && kill "$NGINX_PID" 2>/dev/null || true
    [[ -n ${ZC_PID:-} ]] && kill "$ZC_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    if [[ -z ${SOAK_KEEP:-} ]]; then rm -rf "$WORK"; else echo "soak: files kept in $WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
    local port=$1 i
    for i in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    die "nothing listens on $port"
}

NGINX_PORT=$(free_port)
ZC_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process off; worker_processes 1;
error_log $WORK/nginx/error.log; pid $WORK/nginx/nginx.pid;
events {}
rtmp { server { listen 127.0.0.1:$NGINX_PORT; chunk_size 4096;
  application live { live on; record off; } } }
EOF
start_nginx() {
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >>"$WORK/nginx/out.log" 2>&1 &
    NGINX_PID=$!
    wait_port "$NGINX_PORT"
}
start_nginx

HTTP_PORT=$(free_port)
mkdir -p "$WORK/rec"
cat >"$WORK/zerocast.toml" <<EOF
record = "$WORK/rec"
record_max_mb = 4
record_keep_mb = 8
[[push]]
url = "rtmp://127.0.0.1:$NGINX_PORT/live/soak"
[[push]]
url = "rtmp://upstream.invalid/live/nowhere"
stream = "live/audio"
EOF
"$ZEROCAST" --listen "127.0.0.1:$ZC_PORT" --http "127.0.0.1:$HTTP_PORT" --source tone \
    --max-per-addr 100 --config "$WORK/zerocast.toml" >"$WORK/zerocast.log" 2>&1 &
ZC_PID=$!
wait_port "$ZC_PORT"

# One wave's attacks, all gone within 15 s: 10 RTMP players of made-up names that never get a
# publisher (raw handshake, connect, play), 20 requests for missing mounts and 5 requests that
# never finish from each of 127.0.0.2 and 127.0.0.3.
attack() {
    python3 - "$ZC_PORT" "$HTTP_PORT" "$1" <<'PY' >>"$WORK/attacks.log" 2>&1 || true
import socket, struct, sys, time
rtmp, http, wave = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def amf_str(s):
    b = s.encode()
    return b'\x02' + struct.pack('>H', len(b)) + b
def chunk(csid, mtype, body, sid=0):
    head = bytes([csid]) + b'\x00\x00\x00' + struct.pack('>I', len(body))[1:] + bytes([mtype])
    return head + struct.pack('<I', sid) + body
def squatter(name):
    s = socket.create_connection(('127.0.0.1', rtmp), timeout=5)
    s.sendall(b'\x03' + bytes(1536))
    got = b''
    while len(got) < 3073:
        more = s.recv(4096)
        if not more:
            break
        got += more
    s.sendall(bytes(1536))
    obj = b'\x03' + b'\x00\x03app' + amf_str('live') + b'\x00\x00\x09'
    s.sendall(chunk(3, 20, amf_str('connect') + b'\x00' + struct.pack('>d', 1) + obj))
    s.sendall(chunk(3, 20, amf_str('createStream') + b'\x00' + struct.pack('>d', 2) + b'\x05'))
    play = amf_str('play') + b'\x00' + struct.pack('>d', 0) + b'\x05' + amf_str(name)
    s.sendall(chunk(8, 20, play, 1))
    return s
held = []
for i in range(10):
    try:
        held.append(squatter(f'squat{wave}x{i}'))
    except OSError as e:
        print('squatter', e)
for src in ('127.0.0.2', '127.0.0.3'):
    for i in range(20):
        try:
            c = socket.create_connection(('127.0.0.1', http), timeout=5, source_address=(src, 0))
            c.sendall(b'GET /live/none%d.mp3 HTTP/1.1\r\nHost: x\r\n\r\n' % i)
            c.recv(4096)
            c.close()
        except OSError as e:
            print('http', src, e)
    for i in range(5):
        try:
            c = socket.create_connection(('127.0.0.1', http), timeout=5, source_address=(src, 0))
            c.sendall(b'GET /stat HTTP/1.1\r\n')
            held.append(c)
        except OSError as e:
            print('slow', src, e)
time.sleep(15)
for s in held:
    s.close()
PY
}

# One sample: seconds, RSS KiB, open descriptors, CPU seconds (utime + stime).
sample() {
    local now=$1 rss fds ticks
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$ZC_PID/status")
    fds=$(find "/proc/$ZC_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
    ticks=$(awk '{print $14 + $15}' "/proc/$ZC_PID/stat")
    echo "$now $rss $fds $(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {print t / hz}')"
}

say "soak: ${SOAK_SECONDS} s, waves of 20 players every ${WAVE_SECONDS} s, nginx restarted every ${NGINX_RESTART_EVERY} s"
START=$SECONDS
: >"$WORK/samples"
waves=0 failed_waves=0 restarts=0 next_wave=0 next_sample=0 next_restart=$NGINX_RESTART_EVERY
while (( SECONDS - START < SOAK_SECONDS )); do
    t=$((SECONDS - START))
    kill -0 "$ZC_PID" 2>/dev/null || die "zerocast died; log: $(tail -5 "$WORK/zerocast.log")"
    if (( t >= next_sample )); then
        sample "$t" >>"$WORK/samples"
        next_sample=$((next_sample + SAMPLE_EVERY))
    fi
    if (( t >= next_wave && t + WAVE_SECONDS <= SOAK_SECONDS )); then
        # The previous wave's players have left (their duration is shorter than a wave).
        for p in "${PIDS[@]}"; do
            if ! wait "$p"; then failed_waves=$((failed_waves + 1)); fi
        done
        PIDS=()
        "$LOAD" --url "rtmp://127.0.0.1:$ZC_PORT/live/audio" --players 20 \
            --duration $((WAVE_SECONDS - 5)) --check >"$WORK/wave-$waves.log" 2>&1 &
        PIDS+=($!)
        # The publisher of live/p changes codec every wave (a new ring for its HTTP listeners).
        codec=pcm_s16le
        (( waves % 2 )) && codec=aac
        ffmpeg -nostdin -loglevel error -re -f lavfi -i "sine=f=660:d=$((WAVE_SECONDS / 2))" \
            -c:a "$codec" -ar 44100 -f flv "rtmp://127.0.0.1:$ZC_PORT/live/p" \
            >"$WORK/publisher-$waves.log" 2>&1 &
        PIDS+=($!)
        attack "$waves" &
        PIDS+=($!)
        waves=$((waves + 1))
        next_wave=$((next_wave + WAVE_SECONDS))
    fi
    if (( t >= next_restart )); then
        kill -9 "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        sleep 3
        start_nginx
        restarts=$((restarts + 1))
        next_restart=$((next_restart + NGINX_RESTART_EVERY))
    fi
    sleep 1
done
for p in "${PIDS[@]}"; do
    if ! wait "$p"; then failed_waves=$((failed_waves + 1)); fi
done
sample $((SECONDS - START)) >>"$WORK/samples"
kill -0 "$ZC_PID" 2>/dev/null || die "zerocast died at the end"

# Least-squares slopes per hour, from the first minute on (start-up allocations excluded).
read -r rss_slope fd_slope cpu_rate rss_first rss_last fd_last <<<"$(awk '
    $1 >= 60 { n++; x=$1/3600; sx+=x; sxx+=x*x;
               sr+=$2*x; r+=$2; sf+=$3*x; f+=$3; if (!seen) {r0=$2; seen=1}; rl=$2; fl=$3 }
    { c0 = (NR == 1) ? $4 : c0; cl = $4; t0 = (NR == 1) ? $1 : t0; tl = $1 }
    END { d = n*sxx - sx*sx; if (d == 0) d = 1;
          printf "%.1f %.2f %.3f %d %d %d\n", (n*sr - sx*r)/d, (n*sf - sx*f)/d,
                 (cl - c0) / ((tl - t0) / 60), r0, rl, fl }' "$WORK/samples")"
ups=$(grep -c "back up" "$WORK/zerocast.log" || true)
printf '\nsoak result (%d s): %d waves of 20 players, %d with a problem; %d nginx restarts, push back up %d times\n' \
    "$SOAK_SECONDS" "$waves" "$failed_waves" "$restarts" "$ups"
printf '| measure | value |\n|---|---|\n'
printf '| RSS after 1 min → end | %s KiB → %s KiB |\n' "$rss_first" "$rss_last"
printf '| RSS slope | %s KiB/h |\n' "$rss_slope"
printf '| open descriptors at the end | %s |\n' "$fd_last"
printf '| descriptor slope | %s /h |\n' "$fd_slope"
printf '| CPU | %s CPU-s per minute |\n' "$cpu_rate"

problems=()
(( failed_waves == 0 )) || problems+=("$failed_waves player waves or publishers reported a problem (see $WORK)")
(( ups >= restarts )) || problems+=("the push came back $ups times after $restarts restarts")
awk -v s="$rss_slope" 'BEGIN { exit !(s > 1024) }' && problems+=("RSS grows $rss_slope KiB/h")
awk -v s="$fd_slope" 'BEGIN { exit !(s > 10) }' && problems+=("descriptors grow $fd_slope /h")
if (( ${#problems[@]} > 0 )); then
    SOAK_KEEP=1
    printf 'soak: %s\n' "${problems[@]}" >&2
    exit 1
fi
echo "soak: ok"
