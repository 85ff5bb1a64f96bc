#!/usr/bin/env bash
# Gives a lab machine /etc/hosts entries for every machine of the lab, so
# master.docker-dca.example and the others resolve without DNS.
#
# Usage: hosts.sh "IP NAME"...   (e.g. "10.20.20.100 master")
# Environment: LAB_DOMAIN (default docker-dca.example), HOSTS_FILE (/etc/hosts)
set -euo pipefail

domain="${LAB_DOMAIN:-docker-dca.example}"
hosts_file="${HOSTS_FILE:-/etc/hosts}"
begin="# BEGIN capstan lab"
end="# END capstan lab"

[[ $# -gt 0 ]] || {
	echo "usage: $0 'IP NAME'..." >&2
	exit 2
}

block="$begin"$'\n'
for entry in "$@"; do
	read -r ip name <<<"$entry"
	block+="$ip $name.$domain $name"$'\n'
done
block+="$end"

# Drop an earlier block (idempotent re-provisioning) and the 127.0.1.1 line
# that maps this machine's own name to loopback: peers and certificates must
# see its lab address.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed -e "/^$begin\$/,/^$end\$/d" -e '/^127\.0\.1\.1[[:space:]]/d' "$hosts_file" >"$tmp"
printf '%s\n' "$block" >>"$tmp"
cat "$tmp" >"$hosts_file"

echo "hosts.sh: $hosts_file lists $# lab machines in $domain"
