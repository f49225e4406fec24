#!/usr/bin/env bash
# Builds target/deb/zerocast_<version>_armhf.deb from the ARMv6 binary (the same recipe as
# `ci/run.sh cross`, see ci/lib.sh) and the files in packaging/, then checks its metadata and
# contents. Plain dpkg-deb, no debhelper: the package is one binary, a unit, a config and a page.
set -euo pipefail

# shellcheck source=ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
tool_path
cd "$ROOT"

build_pi_binary

id=$(cargo pkgid --locked -p zerocast)
version=${id##*[@#]}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "cannot read zerocast's version from '$id'"

out="$TARGET_DIR/deb"
root="$out/zerocast_${version}_armhf"
deb="$out/zerocast_${version}_armhf.deb"
rm -rf "$root" "$deb"
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/zerocast" \
    "$root/usr/share/man/man1" "$root/usr/share/doc/zerocast"

install -m 755 "$PI_BIN" "$root/usr/bin/zerocast"
install -m 644 packaging/zerocast.service "$root/lib/systemd/system/zerocast.service"
install -m 644 packaging/zerocast.toml "$root/etc/zerocast/zerocast.toml"
# -n: no name or time stamp in the gzip header, so the same page gives the same bytes.
gzip -9n <packaging/zerocast.1 >"$root/usr/share/man/man1/zerocast.1.gz"
chmod 644 "$root/usr/share/man/man1/zerocast.1.gz"
# A native package (no Debian revision): its changelog is changelog.gz, and its newest entry
# must be the version being built.
changelog_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
[[ $changelog_version == "$version" ]] ||
    die "packaging/debian/changelog's newest entry is $changelog_version, the crate is $version"
gzip -9n <packaging/debian/changelog >"$root/usr/share/doc/zerocast/changelog.gz"
chmod 644 "$root/usr/share/doc/zerocast/changelog.gz"

# Machine-readable debian/copyright (DEP-5) around the text of LICENSE: continuation lines are
# indented by one space and an empty line is written " .".
{
    printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n'
    printf 'Upstream-Name: zerocast\n\n'
    printf 'Files: *\n'
    printf 'Copyright: %s\n' "$(grep -m1 -o 'Copyright (c) .*' LICENSE | sed 's/^Copyright (c) //')"
    printf 'License: MIT or Apache-2.0\n'
    sed -e 's/^$/./' -e 's/^/ /' LICENSE
    printf ' .\n On Debian systems the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.\n'
    printf ' .\n The binary also contains the Fraunhofer FDK AAC library (its own license) and LAME\n'
    printf ' (LGPL-2+, bindings LGPL-3): THIRD_PARTY_NOTICES.gz in this directory has their\n'
    printf ' license texts and what a redistributor must do.\n'
} >"$root/usr/share/doc/zerocast/copyright"
chmod 644 "$root/usr/share/doc/zerocast/copyright"
# The codec libraries' licenses (FDK's notice, LAME's LGPL obligations): docs are compressed.
gzip -9n <THIRD_PARTY_NOTICES >"$root/usr/share/doc/zerocast/THIRD_PARTY_NOTICES.gz"
chmod 644 "$root/usr/share/doc/zerocast/THIRD_PARTY_NOTICES.gz"

install -m 755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
install -m 644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
    packaging/debian/control.in >"$root/DEBIAN/control"
chmod 644 "$root/DEBIAN/control"

dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "deb: $deb ($(stat -c %s "$deb") bytes)"

# The checks: the fields a Pi's dpkg decides on, and the files it would install.
info=$(dpkg-deb -I "$deb")
printf '%s\n' "$info"
field() { sed -n "s/^ $1: //p" <<<"$info"; }
[[ $(field Package) == zerocast ]] || die "Package is not zerocast"
[[ $(field Version) == "$version" ]] || die "Version is not $version"
[[ $(field Architecture) == armhf ]] || die "Architecture is not armhf"
[[ $(field Depends) == "libasound2 (>= 1.1), libc6 (>= 2.36), adduser" ]] || die "unexpected Depends"
contents=$(dpkg-deb -c "$deb")
printf '%s\n' "$contents"
for f in ./usr/bin/zerocast ./lib/systemd/system/zerocast.service ./etc/zerocast/zerocast.toml \
    ./usr/share/man/man1/zerocast.1.gz ./usr/share/doc/zerocast/copyright \
    ./usr/share/doc/zerocast/THIRD_PARTY_NOTICES.gz; do
    grep -q " $f\$" <<<"$contents" || die "$deb lacks $f"
done
grep -q '^-rwxr-xr-x root/root .* ./usr/bin/zerocast$' <<<"$contents" ||
    die "/usr/bin/zerocast is not an executable owned by root"
[[ $(dpkg-deb -f "$deb" Installed-Size) -gt 0 ]] || die "Installed-Size missing"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/zerocast/zerocast.toml ||
    die "/etc/zerocast/zerocast.toml is not a conffile"
# The binary inside is the checked ARMv6 one.
cmp -s "$PI_BIN" <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/zerocast) ||
    die "the packaged binary differs from $PI_BIN"
man --warnings -l "$root/usr/share/man/man1/zerocast.1.gz" 2>&1 >/dev/null | { ! grep .; } ||
    die "man page warnings"

# The unit, checked by systemd itself (directives, user, paths). Its ExecStart binary is ARM, so
# it is swapped for /bin/true; --man=no since the page is not installed on this machine.
if command -v systemd-analyze >/dev/null; then
    sed 's|^ExecStart=/usr/bin/zerocast |ExecStart=/bin/true |' packaging/zerocast.service \
        >"$out/zerocast.service"
    systemd-analyze verify --man=no "$out/zerocast.service"
    echo "deb: systemd-analyze verify: zerocast.service ok"
    # The hardening, scored by systemd (0 = locked down, 10 = exposed): 1.5 when written; a
    # directive lost on the way fails the step above 2.0.
    systemd-analyze security --offline=true --threshold=20 "$out/zerocast.service" | tail -1 ||
        die "zerocast.service: systemd-analyze security exposure above 2.0"
elif [[ -n ${CI:-} ]]; then
    die "systemd-analyze not found (package systemd)"
fi

# Debian's own checks (policy, maintainer scripts, the unit): any error or warning fails.
if command -v lintian >/dev/null; then
    lintian --fail-on error,warning --tag-display-limit 0 "$deb"
    echo "deb: lintian: no errors or warnings"
elif [[ -n ${CI:-} ]]; then
    die "lintian not found (package lintian)"
fi
