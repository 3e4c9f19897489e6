# shellcheck shell=bash
# Shared by scripts/demo and scripts/test: install what is needed (Debian 12),
# idempotently, and build.

PKGS=(gcc libc6-dev meson ninja-build pkg-config libzstd-dev liblz4-dev libuv1-dev liburing-dev
      libcmocka-dev libsystemd-dev systemd python3 python3-numpy redis-server redis-tools
      default-jre-headless groff-base clang libclang-rt-14-dev)

die() { echo "$0: $*" >&2; exit 1; }

need_root() {
	[ "$(id -u)" = 0 ] || die "run $0 as root (userfaultfd with fork events and apt-get need it)"
}

install_deps() {
	local missing=()
	for p in "${PKGS[@]}" "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "== installing: ${missing[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq || die "apt-get update failed"
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
			die "apt-get install ${missing[*]} failed"
	fi
}

# build DIR [meson options...]: configure once, reconfigure after, compile.
build() {
	local dir=$1; shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "$@" >/dev/null || die "meson configure $dir failed"
	else
		meson setup "$dir" "$@" >/dev/null || die "meson setup $dir failed (see $dir/meson-logs/meson-log.txt)"
	fi
	ninja -C "$dir" >/dev/null || { ninja -C "$dir"; die "build in $dir failed"; }
}
