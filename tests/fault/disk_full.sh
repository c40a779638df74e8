#!/usr/bin/env bash
# Disk-full campaign: vigild's data directory on a small tmpfs that a
# filler file has nearly filled.  Writes go on until the server refuses
# one; then:
#   - the refusal says "No space left on device" and nothing of that write
#     is stored (the count is exactly the acknowledged points);
#   - the server is still up and queries work;
#   - once the filler is deleted, writes succeed again;
#   - after a SIGKILL the store opens cleanly with every acknowledged point.
# Needs root (it mounts the tmpfs); otherwise it says so and exits 0.
#   tests/fault/disk_full.sh            (BUILD_DIR defaults to build)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:-$root/build}"
vigild="$build/server/vigild"
vigil="$build/client/vigil"
size_mb="${DISK_FULL_MB:-64}"
free_mb="${DISK_FULL_FREE_MB:-6}"

if [[ $(id -u) -ne 0 ]]; then
	echo "disk_full.sh: SKIPPED: needs root to mount a tmpfs"
	exit 0
fi
for b in "$vigild" "$vigil"; do
	[[ -x "$b" ]] || { echo "disk_full.sh: $b not built" >&2; exit 2; }
done

work="$(mktemp -d /tmp/vigil-diskfull-XXXXXX)"
mnt="$work/mnt"
pid=""
cleanup() {
	[[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	mountpoint -q "$mnt" && umount "$mnt" || true
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$mnt"
if ! mount -t tmpfs -o size="${size_mb}m" tmpfs "$mnt" 2>"$work/mount.err"; then
	echo "disk_full.sh: SKIPPED: cannot mount a tmpfs: $(cat "$work/mount.err")"
	exit 0
fi

fail() {
	echo "disk_full.sh: FAIL: $*" >&2
	echo "--- server log (tail) ---" >&2
	tail -20 "$work/vigild.log" >&2 || true
	exit 1
}

start_server() {
	: >"$work/vigild.log"
	"$vigild" --data "$mnt/data" --listen 127.0.0.1:0 --log-level info 2>"$work/vigild.log" &
	pid=$!
	for _ in $(seq 200); do
		port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$work/vigild.log" | head -1)
		[[ -n "$port" ]] && break
		kill -0 "$pid" 2>/dev/null || fail "vigild exited at start: $(cat "$work/vigild.log")"
		sleep 0.05
	done
	[[ -n "$port" ]] || fail "vigild did not report its port"
	addr="127.0.0.1:$port"
}

# Batch b: 5,000 points of series batch=b with incompressible values.
batch() {
	awk -v b="$1" 'BEGIN { srand(b); for (i = 0; i < 5000; i++)
		printf "disk,batch=b%d v=%.17g %d\n", b, rand() * 1e6, (b * 5000 + i + 1) * 1000 }'
}

count() {
	"$vigil" --addr "$addr" query 'SELECT count(v) FROM disk' --format csv 2>"$work/query.err" |
		awk -F, 'NR == 2 { print $NF }'
}

start_server
used_kb=$(df -k --output=used "$mnt" | tail -1)
avail_kb=$(df -k --output=avail "$mnt" | tail -1)
filler_kb=$((avail_kb - free_mb * 1024))
dd if=/dev/zero of="$mnt/filler" bs=1k count="$filler_kb" status=none
echo "tmpfs ${size_mb} MiB at $mnt; store uses $((used_kb / 1024)) MiB; filler leaves ${free_mb} MiB"

acked=0
b=0
err=""
t0=$(date +%s.%N)
while :; do
	b=$((b + 1))
	if batch "$b" | "$vigil" --addr "$addr" write --precision ns 2>"$work/write.err" >/dev/null; then
		acked=$((acked + 5000))
	else
		err=$(cat "$work/write.err")
		break
	fi
	((b < 100000)) || fail "no write was refused after $b batches"
done
t1=$(date +%s.%N)
echo "acknowledged: $((b - 1)) batches, $acked points before the first refusal (batch $b)"
echo "refusal: $err"
grep -qi "no space left on device" <<<"$err" || fail "the refusal does not say no space: $err"
kill -0 "$pid" 2>/dev/null || fail "vigild died"

# Still refused while full, and the server keeps answering.
batch "$b" | "$vigil" --addr "$addr" write --precision ns 2>/dev/null >/dev/null &&
	fail "a write succeeded on the full disk" || true
n=$(count) || fail "query failed on the full disk: $(cat "$work/query.err")"
[[ "$n" == "$acked" ]] || fail "count $n after the refusals, $acked acknowledged"
echo "on the full disk: queries answer, count = $n = acknowledged"

# Free space: writes succeed again.
rm -f "$mnt/filler"
batch "$b" | "$vigil" --addr "$addr" write --precision ns >/dev/null 2>"$work/write.err" ||
	fail "write after freeing space failed: $(cat "$work/write.err")"
acked=$((acked + 5000))
n=$(count)
[[ "$n" == "$acked" ]] || fail "count $n after freeing space, $acked acknowledged"
echo "after freeing space: batch $b written, count = $n"

# A crash after all that: the store opens cleanly with everything.
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
pid=""
start_server
n=$(count)
[[ "$n" == "$acked" ]] || fail "count $n after kill -9 and restart, $acked acknowledged"
kill -TERM "$pid"
wait "$pid" || fail "vigild exit status $? after SIGTERM"
pid=""
printf 'disk_full.sh: PASS: %d points acknowledged, all present; filled in %.1f s; restart after kill -9 clean\n' \
	"$acked" "$(echo "$t1 - $t0" | bc)"
