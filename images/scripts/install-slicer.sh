#!/usr/bin/env bash
# Installs 3D Slicer and burst on the image being built, as root.
#
#   SLICER_VERSION  Slicer release, e.g. 5.8.1; installed to /opt/slicer/$SLICER_VERSION
#   SLICER_URL      the release's Linux amd64 .tar.gz
#   SLICER_SHA256   its SHA-256: nothing is unpacked unless the download matches
#   BURST_PROTOCOL  the burst binary's run-layout protocol, recorded in /etc/burst/image.json
#   BURST_UPLOAD    where the linux/amd64 burst binary was uploaded (default /tmp/burst)
#
# Running it again with the same inputs re-uses a verified install.
set -euo pipefail

log() { printf 'install-slicer: %s\n' "$*"; }
die() { printf 'install-slicer: error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"

: "${SLICER_VERSION:?SLICER_VERSION is required}"
: "${SLICER_URL:?SLICER_URL is required}"
: "${BURST_PROTOCOL:?BURST_PROTOCOL is required}"
BURST_UPLOAD=${BURST_UPLOAD:-/tmp/burst}
SLICER_SHA256=$(printf '%s' "${SLICER_SHA256:-}" | tr 'A-F' 'a-f')

[[ $SLICER_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
	die "SLICER_VERSION '$SLICER_VERSION' is not a release number such as 5.8.1"
[[ $SLICER_SHA256 =~ ^[0-9a-f]{64}$ ]] ||
	die "SLICER_SHA256 must be the 64 hex digit SHA-256 of the archive at $SLICER_URL (got '${SLICER_SHA256}'); refusing to install an unverified Slicer"
[[ $BURST_PROTOCOL =~ ^[1-9][0-9]*$ ]] ||
	die "BURST_PROTOCOL '$BURST_PROTOCOL' is not a positive whole number"
[[ -f $BURST_UPLOAD ]] || die "no burst binary at $BURST_UPLOAD"

slicer_root=/opt/slicer
slicer_home=$slicer_root/$SLICER_VERSION
stamp=$slicer_home/.burst-sha256

# --- runtime libraries --------------------------------------------------------

# A fresh instance may still be running cloud-init or unattended upgrades,
# which hold the dpkg lock for a while after boot.
if command -v cloud-init >/dev/null; then
	log "waiting for cloud-init to finish"
	cloud-init status --wait >/dev/null || log "cloud-init reported a problem; carrying on"
fi

export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0 "$@"; }

# Slicer's binary release brings its own Qt, Python and VTK; these are the
# system libraries it links against, plus Xvfb for the few tasks that need a
# display and Mesa's software OpenGL for anything that renders.
packages=(
	ca-certificates curl xauth xvfb
	libasound2 libegl1 libgl1 libgl1-mesa-dri libglu1-mesa libglx-mesa0
	libdbus-1-3 libfontconfig1 libnss3 libpulse-mainloop-glib0
	libsm6 libx11-xcb1 libxcomposite1 libxcursor1 libxi6 libxrandr2 libxrender1 libxtst6
	libxkbcommon0 libxkbcommon-x11-0
	libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
	libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0 libxcb-xkb1
)
log "installing runtime libraries"
apt_get update -q
apt_get install -y -q --no-install-recommends "${packages[@]}"

# --- Slicer ---------------------------------------------------------------------

if [[ -f $stamp && $(<"$stamp") == "$SLICER_SHA256" && -x $slicer_home/bin/PythonSlicer ]]; then
	log "Slicer $SLICER_VERSION already installed from the verified archive"
else
	work=$(mktemp -d /var/tmp/burst-slicer.XXXXXX)
	trap 'rm -rf "$work"' EXIT
	archive=$work/slicer.tar.gz

	log "downloading Slicer $SLICER_VERSION from $SLICER_URL"
	# Each retry starts over: Slicer's download server mishandles resumed
	# (range) requests, so a resumed download would be corrupt.
	curl --fail --location --silent --show-error \
		--retry 5 --retry-delay 10 --retry-all-errors \
		--connect-timeout 30 --output "$archive" "$SLICER_URL"

	log "verifying SHA-256"
	if ! printf '%s  %s\n' "$SLICER_SHA256" "$archive" | sha256sum -c --status -; then
		actual=$(sha256sum "$archive" | cut -d' ' -f1)
		die "checksum mismatch for $SLICER_URL: expected $SLICER_SHA256, got $actual; not installing"
	fi

	log "unpacking to $slicer_home"
	mkdir -p "$slicer_root"
	staging=$slicer_root/.staging-$SLICER_VERSION
	rm -rf "$staging"
	mkdir -p "$staging"
	# The archive holds one folder, Slicer-<version>-linux-amd64/.
	tar -xzf "$archive" -C "$staging" --strip-components=1 --no-same-owner
	[[ -x $staging/Slicer && -x $staging/bin/PythonSlicer ]] ||
		die "the archive from $SLICER_URL has no Slicer or bin/PythonSlicer launcher"
	chmod -R go-w,a+rX "$staging"
	printf '%s\n' "$SLICER_SHA256" >"$staging/.burst-sha256"
	rm -rf "$slicer_home"
	mv "$staging" "$slicer_home"
fi

ln -sfn "$slicer_home/Slicer" /usr/local/bin/Slicer
ln -sfn "$slicer_home/bin/PythonSlicer" /usr/local/bin/PythonSlicer

# --- burst ----------------------------------------------------------------------

# An ELF executable starts with 0x7f 'E' 'L' 'F'.
[[ $(head -c 4 "$BURST_UPLOAD" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]] ||
	die "$BURST_UPLOAD is not a Linux executable (build it with GOOS=linux GOARCH=amd64)"
install -m 0755 -o root -g root "$BURST_UPLOAD" /usr/local/bin/burst
rm -f "$BURST_UPLOAD"

# --- what the image holds ----------------------------------------------------

mkdir -p /etc/burst
cat >/etc/burst/image.json.tmp <<EOF
{
  "image": "worker",
  "slicer_version": "$SLICER_VERSION",
  "slicer_home": "$slicer_home",
  "slicer_sha256": "$SLICER_SHA256",
  "protocol": $BURST_PROTOCOL,
  "build_date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
chmod 0644 /etc/burst/image.json.tmp
mv /etc/burst/image.json.tmp /etc/burst/image.json

log "cleaning up"
apt_get clean
rm -rf /var/lib/apt/lists/*

log "done: Slicer $SLICER_VERSION in $slicer_home, burst in /usr/local/bin, protocol $BURST_PROTOCOL"
