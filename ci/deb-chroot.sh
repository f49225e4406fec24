#!/usr/bin/env bash
# The .deb installed, run, upgraded and purged in a Debian 12 armhf root, as on a Pi:
#   1. a bookworm armhf root (debootstrap minbase + the package's dependencies), run under
#      qemu-arm-static through binfmt_misc; built once and cached as target/deb-chroot/*.tar;
#   2. `dpkg -i`: the maintainer scripts made the system user zerocast (in group audio, home
#      /var/lib/zerocast), the state directory, and enabled the unit through deb-systemd-helper;
#   3. zerocast started as the unit would start it (its ExecStart, user zerocast, group zerocast,
#      supplementary group audio; no systemd runs in a chroot) with `--source tone:440`, and an
#      ffmpeg player on the host decodes the stream: ffprobe's stream info and the tone's
#      frequency;
#   4. the administrator edits /etc/zerocast/zerocast.toml; an upgrade to a newer version (the
#      same package repacked with a higher version and a changed default config) keeps the edit
#      (the new default lands in zerocast.toml.dpkg-dist) and the enablement, and still serves;
#      a unit the administrator disabled stays disabled through a reinstall;
#   5. `dpkg --purge`: config, state directory (recordings) and enablement are gone.
# Run by `ci/run.sh deb` after ci/deb.sh built target/deb/zerocast_<version>_armhf.deb. Needs root
# (chroot, mount), debootstrap, qemu-user-static, ffmpeg, python3. DEB_MIRROR overrides the
# Debian mirror.
set -euo pipefail

# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
start=$SECONDS

[[ $(id -u) -eq 0 ]] || die "deb-chroot: needs root (chroot, binfmt_misc)"
for tool in debootstrap qemu-arm-static ffmpeg ffprobe python3 dpkg-deb; do
    command -v "$tool" >/dev/null || die "deb-chroot: $tool not found (ci/run.sh setup)"
done

id=$(cargo pkgid --locked -p zerocast)
version=${id##*[@#]}
deb="$TARGET_DIR/deb/zerocast_${version}_armhf.deb"
[[ -f $deb ]] || die "deb-chroot: $deb missing (ci/deb.sh builds it)"

SUITE=bookworm
MIRROR=${DEB_MIRROR:-http://deb.debian.org/debian}
# What the package depends on, installed when the root is made, so dpkg -i needs no network.
INCLUDE=adduser,libasound2,init-system-helpers
work="$TARGET_DIR/deb-chroot"
cache="$work/$SUITE-armhf-minbase.tar"
root="$work/root"
mkdir -p "$work"

# ARM executables run through qemu-arm-static (fix-binary flag: the kernel holds the static
# interpreter open, so nothing of qemu is needed inside the root).
binfmt=/proc/sys/fs/binfmt_misc
if [[ ! -e $binfmt/register ]]; then
    mount -t binfmt_misc binfmt_misc "$binfmt" || die "deb-chroot: cannot mount binfmt_misc"
fi
if [[ ! -e $binfmt/qemu-arm ]]; then
    update-binfmts --enable qemu-arm || die "deb-chroot: cannot register qemu-arm with binfmt_misc"
fi
grep -qx enabled "$binfmt/qemu-arm" || die "deb-chroot: binfmt qemu-arm is disabled"
grep -q '^flags: .*F' "$binfmt/qemu-arm" ||
    die "deb-chroot: binfmt qemu-arm lacks the fix-binary flag (install qemu-user-static)"

# The chroot's mounts and zerocast, undone on any exit.
zc_pid=
cleanup() {
    if [[ -n $zc_pid ]] && kill -0 "$zc_pid" 2>/dev/null; then
        kill -KILL "$zc_pid" 2>/dev/null || true
    fi
    if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc" || true; fi
}
trap cleanup EXIT

if [[ ! -f $cache ]]; then
    say "deb-chroot: making a $SUITE armhf root (once; cached in $cache)"
    rm -rf "$root"
    debootstrap --arch=armhf --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$MIRROR"
    rm -rf "$root/var/cache/apt/archives/"*.deb
    tar -C "$root" -cf "$cache.tmp" .
    mv "$cache.tmp" "$cache"
fi
rm -rf "$root"
mkdir -p "$root"
tar -C "$root" -xf "$cache"
mount -t proc proc "$root/proc"
echo "deb-chroot: root ready after $((SECONDS - start)) s:" \
    "$(chroot "$root" uname -m), Debian $(cat "$root/etc/debian_version")"

in_root() { chroot "$root" "$@"; }
check() {
    local what=$1
    shift
    "$@" || die "deb-chroot: $what"
    echo "deb-chroot: ok: $what"
}

# --- 2. install ---
cp "$deb" "$root/tmp/"
in_root dpkg -i "/tmp/$(basename "$deb")"
passwd_line=$(in_root getent passwd zerocast) || die "deb-chroot: no user zerocast"
echo "deb-chroot: $passwd_line"
IFS=: read -r _ _ uid gid _ home shell <<<"$passwd_line"
check "zerocast is a system user (uid $uid < 1000) with home /var/lib/zerocast and no login" \
    test "$uid" -lt 1000 -a "$home" = /var/lib/zerocast -a "$shell" = /usr/sbin/nologin
groups=$(in_root id -nG zerocast)
check "zerocast's groups ($groups) are zerocast and audio" \
    test "$(tr ' ' '\n' <<<"$groups" | sort | tr '\n' ' ')" = "audio zerocast "
# Numeric ids: the names are the root's, not this machine's.
check "/var/lib/zerocast is zerocast's, mode 750" \
    test "$(stat -c '%u:%g %a' "$root/var/lib/zerocast")" = "$uid:$gid 750"
check "the config (keys, passwords) is root's, group zerocast, mode 640" \
    test "$(stat -c '%u:%g %a' "$root/etc/zerocast/zerocast.toml")" = "0:$gid 640"
wants=/etc/systemd/system/multi-user.target.wants/zerocast.service
check "the unit is enabled ($wants)" \
    test "$(readlink "$root$wants")" = /lib/systemd/system/zerocast.service
check "deb-systemd-helper recorded the enablement" \
    test -e "$root/var/lib/systemd/deb-systemd-helper-enabled/zerocast.service.dsh-also"

# --- 3. run as the unit does, and play ---
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
# Starts zerocast from the installed unit's ExecStart, as user zerocast with the unit's groups.
start_service() {
    local exec_start port=$1
    exec_start=$(sed -n 's/^ExecStart=//p' "$root/lib/systemd/system/zerocast.service")
    [[ -n $exec_start ]] || die "deb-chroot: no ExecStart in the unit"
    # shellcheck disable=SC2086 # ExecStart is words, as systemd splits it.
    chroot --userspec=zerocast:zerocast --groups=audio "$root" $exec_start \
        --source tone:440 --listen "127.0.0.1:$port" --http off >"$work/zerocast.log" 2>&1 &
    zc_pid=$!
    local deadline=$((SECONDS + 60))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ! kill -0 "$zc_pid" 2>/dev/null || [[ $SECONDS -ge $deadline ]]; then
            cat "$work/zerocast.log"
            die "deb-chroot: zerocast exited or did not listen within 60 s"
        fi
        sleep 0.2
    done
    local audio status="/proc/$zc_pid/status"
    audio=$(in_root getent group audio | cut -d: -f3)
    check "zerocast runs as user zerocast with group audio" \
        grep -Eq "^Groups:.*[[:space:]]$audio([[:space:]]|$)" "$status"
    check "zerocast runs as uid $uid" grep -q "^Uid:[[:space:]]*$uid[[:space:]]" "$status"
}
stop_service() {
    kill -TERM "$zc_pid"
    local deadline=$((SECONDS + 10))
    while kill -0 "$zc_pid" 2>/dev/null; do
        [[ $SECONDS -lt $deadline ]] || die "deb-chroot: zerocast ignored SIGTERM for 10 s"
        sleep 0.1
    done
    wait "$zc_pid" || die "deb-chroot: zerocast exited with $? on SIGTERM"
    zc_pid=
}
# ffprobe's view of the stream, then 3 s decoded by ffmpeg and the tone's frequency measured.
play() {
    local port=$1 url info wav="$work/played.wav"
    url="rtmp://127.0.0.1:$port/live/audio"
    info=$(timeout 30 ffprobe -v error -of csv=p=0 -select_streams a \
        -show_entries stream=codec_name,sample_rate,channels "$url")
    echo "deb-chroot: ffprobe $url: $info"
    check "the stream is SWF ADPCM, 44.1 kHz stereo" test "$info" = "adpcm_swf,44100,2"
    timeout 30 ffmpeg -v error -y -i "$url" -t 3 -f wav "$wav"
    python3 - "$wav" <<'EOF'
import array, sys, wave
with wave.open(sys.argv[1]) as w:
    rate, channels = w.getframerate(), w.getnchannels()
    samples = array.array("h", w.readframes(w.getnframes()))[::channels]
# Rising zero crossings, with hysteresis, over the steady part (after 0.2 s).
steady = samples[int(rate * 0.2):]
ups, below = [], False
for i, s in enumerate(steady):
    if s < -1000:
        below = True
    elif s >= 0 and below:
        ups.append(i)
        below = False
hz = (len(ups) - 1) * rate / (ups[-1] - ups[0]) if len(ups) > 10 else 0.0
print(f"deb-chroot: played {len(samples) / rate:.2f} s, tone {hz:.2f} Hz")
sys.exit(0 if abs(hz - 440.0) < 1.0 and len(samples) / rate > 2.9 else 1)
EOF
}
port=$(free_port)
start_service "$port"
play "$port"
check "zerocast can write its state directory" \
    chroot --userspec=zerocast:zerocast "$root" touch /var/lib/zerocast/recording.flv
stop_service

# --- 4. edit the config, upgrade ---
conf=/etc/zerocast/zerocast.toml
sed -i 's/^join_ms = 500$/join_ms = 250/' "$root$conf"
grep -qx 'join_ms = 250' "$root$conf" || die "deb-chroot: the test's config edit did not apply"
new_version="$version+upgradetest1"
repack="$work/repack"
rm -rf "$repack"
dpkg-deb -R "$deb" "$repack"
sed -i "s/^Version: .*/Version: $new_version/" "$repack/DEBIAN/control"
printf '\n# A default added by the newer version.\n' >>"$repack$conf"
new_deb="$work/zerocast_${new_version}_armhf.deb"
dpkg-deb --root-owner-group -Zxz --build "$repack" "$new_deb" >/dev/null
cp "$new_deb" "$root/tmp/"
# Both sides changed the conffile: dpkg would ask; --force-confold answers "keep mine".
in_root dpkg -i --force-confdef --force-confold "/tmp/$(basename "$new_deb")"
check "the upgrade is installed" \
    test "$(in_root dpkg-query -W -f='${Version}' zerocast)" = "$new_version"
check "the administrator's edit survived the upgrade" grep -qx 'join_ms = 250' "$root$conf"
check "the new default config is beside it as .dpkg-dist" \
    grep -q 'added by the newer version' "$root$conf.dpkg-dist"
check "the unit is still enabled" test -L "$root$wants"
check "the state directory survived" test -e "$root/var/lib/zerocast/recording.flv"
port=$(free_port)
start_service "$port"
play "$port"
stop_service
# An administrator who disabled the service keeps it disabled through a reinstall.
# (`systemctl disable zerocast` removes the wants link; no systemctl works in a chroot.)
rm "$root$wants"
in_root dpkg -i "/tmp/$(basename "$new_deb")"
check "a disabled unit stays disabled through a reinstall" test ! -e "$root$wants"

# --- 5. purge ---
in_root dpkg --purge zerocast
check "purge removed the config" test ! -e "$root/etc/zerocast"
check "purge removed /var/lib/zerocast (recordings)" test ! -e "$root/var/lib/zerocast"
check "purge removed the enablement" test ! -e "$root$wants"
check "purge removed deb-systemd-helper's state" \
    test ! -e "$root/var/lib/systemd/deb-systemd-helper-enabled/zerocast.service.dsh-also"
check "the binary is gone" test ! -e "$root/usr/bin/zerocast"
check "dpkg forgot the package" sh -c "! chroot '$root' dpkg-query -W zerocast 2>/dev/null"
echo "deb-chroot: the zerocast user is kept after purge (Debian policy 9.2.2):" \
    "$(in_root getent passwd zerocast)"

echo "time: deb-chroot $((SECONDS - start))s"
