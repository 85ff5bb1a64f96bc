#!/usr/bin/env bash
# Builds a capstan node image from scratch, without a registry or a base
# image: a static capstan binary plus a static busybox for a shell and basic
# tools, imported with `docker import` (the same recipe capstan-testkit uses).
#
# Usage: deploy/image/build.sh [--binary PATH] [--tag TAG] [--busybox PATH]
#   --binary   static capstan binary (default: target/<host triple>/release/capstan,
#              then target/release/capstan)
#   --tag      image tag (default: capstan:<version printed by capstan --version>,
#              else capstan:local)
#   --busybox  static busybox (default: /bin/busybox from Debian's busybox-static)
#
# Build the binary first:
#   RUSTFLAGS='-C target-feature=+crt-static' \
#     cargo build --release --target x86_64-unknown-linux-gnu
#
# Run it, e.g. an all-in-one cluster that uses the host's engine:
#   docker run -d --name capstan -p 443:443 -p 2377:2377 -p 6443:6443 \
#     -v capstan-data:/var/lib/capstan -v /var/run/docker.sock:/var/run/docker.sock \
#     capstan:local up
set -euo pipefail

die() {
	printf 'build.sh: %s\n' "$*" >&2
	exit 1
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
binary=""
tag=""
busybox="/bin/busybox"

while [[ $# -gt 0 ]]; do
	case "$1" in
	--binary) binary="${2:?--binary needs a path}" && shift 2 ;;
	--tag) tag="${2:?--tag needs a value}" && shift 2 ;;
	--busybox) busybox="${2:?--busybox needs a path}" && shift 2 ;;
	-h | --help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' && exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
done

if [[ -z $binary ]]; then
	host_triple=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p' || true)
	for candidate in "$repo_root/target/${host_triple:-x86_64-unknown-linux-gnu}/release/capstan" \
		"$repo_root/target/release/capstan"; do
		if [[ -f $candidate ]]; then
			binary=$candidate
			break
		fi
	done
	[[ -n $binary ]] || die "no capstan binary found under target/; build one (see --help) or pass --binary"
fi

command -v docker >/dev/null 2>&1 || die "docker is not installed"
command -v file >/dev/null 2>&1 || die "'file' is not installed: apt-get install file"

require_static() {
	[[ -f $1 ]] || die "$1 does not exist${2:+; $2}"
	file -L "$1" | grep -Eq 'statically linked|static-pie linked' ||
		die "$1 is not a static executable${2:+; $2}"
}
require_static "$binary" "build with RUSTFLAGS='-C target-feature=+crt-static' --target x86_64-unknown-linux-gnu"
require_static "$busybox" "apt-get install busybox-static"

if [[ -z $tag ]]; then
	version=$("$binary" --version 2>/dev/null | awk 'NR == 1 { print $NF }' || true)
	tag="capstan:${version:-local}"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

mkdir -p "$rootfs"/{bin,etc,root,tmp,usr/local/bin,var/lib/capstan,var/run}
chmod 1777 "$rootfs/tmp"
install -m 0755 "$busybox" "$rootfs/bin/busybox"
for applet in sh sleep cat ls wget echo kill ps mkdir rm test true false env id \
	hostname grep head tail printf touch cp mv ln chmod df du sed wc sort date \
	uname timeout nc nslookup ip ifconfig netstat sha256sum stat tar gzip vi; do
	ln -s busybox "$rootfs/bin/$applet"
done
install -m 0755 "$binary" "$rootfs/usr/local/bin/capstan"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"

tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf "$work/rootfs.tar" .

docker import \
	--change 'ENV PATH=/usr/local/bin:/bin' \
	--change 'WORKDIR /' \
	--change 'VOLUME /var/lib/capstan' \
	--change 'EXPOSE 443 2377 6443' \
	--change 'ENTRYPOINT ["/usr/local/bin/capstan"]' \
	--change 'CMD ["--help"]' \
	--change "LABEL org.opencontainers.image.title=capstan org.opencontainers.image.source=https://github.com/capstan-project/capstan" \
	--message "capstan node image from deploy/image/build.sh" \
	"$work/rootfs.tar" "$tag" >/dev/null

echo "build.sh: built $tag from $binary"
