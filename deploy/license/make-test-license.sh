#!/usr/bin/env bash
# Makes a TEST license, signed with the test key (key id capstan-test), and
# prints the license document (SignedLicense JSON) on stdout. Only debug
# builds of Capstan trust the test key; release builds refuse these licenses.
#
# Usage: deploy/license/make-test-license.sh --licensee NAME --tier TIER \
#          --days N --nodes N [--expired] [--id ID] [--key PEM]
#   --licensee  who the license is for (no control characters)
#   --tier      product tier, e.g. enterprise
#   --days      validity in days, from now
#   --nodes     node limit (at least 1)
#   --expired   make it already expired: it ends one day ago and began
#               --days before that
#   --id        license id (default: a random UUID-like id)
#   --key       ed25519 private key (default: test-license-key.pem beside
#               this script)
#
# Needs bash, GNU date, base64 and OpenSSL 3 (for `pkeyutl -rawin`).
#
# The signature covers the canonical form of the license terms, exactly the
# bytes of `capstan_core::license::canonical_bytes`:
#   - compact JSON (no spaces, no trailing newline) of one object with the
#     keys in this order: id, licensee, tier, issued_at, expires_at, max_nodes;
#   - strings escaped as serde_json does: `"` and `\` escaped with a
#     backslash, control characters escaped (this script refuses them),
#     everything else as raw UTF-8;
#   - times in UTC as YYYY-MM-DDTHH:MM:SSZ (whole seconds, `Z`);
#   - max_nodes as a decimal integer.
# Example:
#   {"id":"x","licensee":"Acme","tier":"enterprise","issued_at":"2026-01-02T03:04:05Z","expires_at":"2027-01-02T03:04:05Z","max_nodes":10}
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
	printf 'make-test-license.sh: %s\n' "$*" >&2
	exit 2
}

usage() {
	sed -n '6,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

# Fails unless option $1 has a value ($2 is the count of arguments left).
need_value() {
	[[ $2 -ge 2 ]] || die "$1 needs a value (see --help)"
}

# A JSON string literal of $1, escaped as serde_json escapes it.
json_string() {
	local s=$1
	if [[ $s =~ [[:cntrl:]] ]]; then
		die "value ${s@Q} contains a control character"
	fi
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}

utc() {
	date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ
}

licensee='' tier='' days='' nodes='' expired=0 id='' key="$here/test-license-key.pem"
while [[ $# -gt 0 ]]; do
	case $1 in
	--licensee | --tier | --days | --nodes | --id | --key)
		need_value "$1" $#
		case $1 in
		--licensee) licensee=$2 ;;
		--tier) tier=$2 ;;
		--days) days=$2 ;;
		--nodes) nodes=$2 ;;
		--id) id=$2 ;;
		--key) key=$2 ;;
		esac
		shift 2
		;;
	--expired)
		expired=1
		shift
		;;
	-h | --help) usage ;;
	*) die "unknown argument ${1@Q} (see --help)" ;;
	esac
done

[[ -n $licensee ]] || die "--licensee is required"
[[ -n $tier ]] || die "--tier is required"
[[ $days =~ ^[1-9][0-9]{0,5}$ ]] || die "--days ${days@Q} is not a whole number of days from 1 to 999999"
[[ $nodes =~ ^[1-9][0-9]{0,9}$ && $nodes -le 4294967295 ]] ||
	die "--nodes ${nodes@Q} is not a whole number from 1 to 4294967295"
[[ -r $key ]] || die "cannot read the private key ${key@Q}"
if [[ -z $id ]]; then
	hex=$(openssl rand -hex 16)
	id="${hex:0:8}-${hex:8:4}-${hex:12:4}-${hex:16:4}-${hex:20:12}"
fi

now=$(date -u +%s)
if [[ $expired -eq 1 ]]; then
	expires=$((now - 86400))
	issued=$((expires - days * 86400))
else
	issued=$now
	expires=$((now + days * 86400))
fi

# Plain assignments, so that set -e stops the script when one fails.
id_json=$(json_string "$id")
licensee_json=$(json_string "$licensee")
tier_json=$(json_string "$tier")
issued_at=$(utc "$issued")
expires_at=$(utc "$expires")
canonical=$(printf '{"id":%s,"licensee":%s,"tier":%s,"issued_at":"%s","expires_at":"%s","max_nodes":%d}' \
	"$id_json" "$licensee_json" "$tier_json" "$issued_at" "$expires_at" "$nodes")

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
printf '%s' "$canonical" >"$tmp"
signature=$(openssl pkeyutl -sign -rawin -inkey "$key" -in "$tmp" | base64 -w0)

printf '{"license":%s,"signature":"%s","key_id":"capstan-test"}\n' "$canonical" "$signature"
