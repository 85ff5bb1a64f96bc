#!/usr/bin/env bash
# The test command of Capstan: installs what the tests need (when missing),
# then checks formatting, lints, builds, runs every test and validates the
# lab's Vagrantfile. Extra arguments go to `cargo nextest run` (e.g. a filter).
#
# Works on a fresh Debian 12 machine with Rust (rustup) and a running Docker
# engine, as root or with passwordless sudo, with no terminal (CI=true).
#
# Environment:
#   NEXTEST_PROFILE   nextest profile to run (default: ci, see .config/nextest.toml)
#   SKIP_INSTALL=1    do not install anything, only check and test
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '==> %s\n' "$*"; }
die() {
	printf 'test.sh: %s\n' "$*" >&2
	exit 1
}

# --- Build settings shared by every cargo step --------------------------------
# Multi-node tests run the capstan binary inside containers made from an empty
# image, so it must be static. With an explicit target, RUSTFLAGS reach only
# target code (not build scripts or proc macros), and the test binaries and the
# capstan binary come out of one compilation.
host_triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_BUILD_TARGET="${CARGO_BUILD_TARGET:-$host_triple}"
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"
export DEBIAN_FRONTEND=noninteractive
# A one-off build gains nothing from incremental state, which is the bulk of a
# debug target folder; CI machines may have little disk.
if [[ ${CI:-} == true ]]; then
	export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi
target_dir="${CARGO_TARGET_DIR:-target}"

# --- Installing what the tests need -------------------------------------------
as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		die "need root (or passwordless sudo) to run: $*"
	fi
}

deb_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

deb_available() {
	local candidate
	candidate=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	[[ -n $candidate && $candidate != "(none)" ]]
}

apt_updated=0
apt_install() {
	local wanted=() pkg
	for pkg in "$@"; do
		deb_installed "$pkg" || wanted+=("$pkg")
	done
	[[ ${#wanted[@]} -eq 0 ]] && return 0
	if [[ $apt_updated -eq 0 ]]; then
		log "apt-get update"
		as_root apt-get -qq update
		apt_updated=1
	fi
	log "apt-get install ${wanted[*]}"
	as_root apt-get -qq install -y --no-install-recommends "${wanted[@]}" >/dev/null
}

vagrant_status="not checked"
install_prerequisites() {
	command -v apt-get >/dev/null 2>&1 ||
		die "this script installs with apt-get (Debian); install busybox-static, file, shellcheck and vagrant by hand and rerun with SKIP_INSTALL=1"

	# busybox-static: the test images' userland. `file`: static-binary checks.
	apt_install busybox-static file tar shellcheck curl
	# skopeo: the registry tests' second client (copies, inspect, multi-arch).
	apt_install skopeo
	# notary: the content trust tests' independent Notary client.
	apt_install notary
	# chromium and its WebDriver: the dashboard tests' real browser.
	apt_install chromium chromium-driver
	command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip

	# schemathesis fuzzes the gateway's REST API from its OpenAPI document.
	if ! command -v schemathesis >/dev/null 2>&1; then
		log "pip install schemathesis"
		python3 -m pip install --quiet schemathesis ||
			python3 -m pip install --quiet --break-system-packages schemathesis
	fi

	# vagrant: only `vagrant validate` runs; it boots nothing and needs no
	# provider. Debian 12 ships it in main.
	if ! command -v vagrant >/dev/null 2>&1; then
		if [[ $apt_updated -eq 0 ]]; then
			as_root apt-get -qq update
			apt_updated=1
		fi
		if deb_available vagrant; then
			apt_install vagrant
		else
			vagrant_status="skipped: this system's apt sources have no vagrant package"
		fi
	fi

	if command -v rustup >/dev/null 2>&1; then
		local component
		for component in clippy rustfmt; do
			if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
				log "rustup component add $component"
				rustup component add "$component"
			fi
		done
		if ! rustup target list --installed | grep -qx "$CARGO_BUILD_TARGET"; then
			rustup target add "$CARGO_BUILD_TARGET"
		fi
	fi

	if ! cargo nextest --version >/dev/null 2>&1; then
		log "cargo install --locked cargo-nextest"
		cargo install --locked cargo-nextest
	fi
}

check_environment() {
	[[ -x /bin/busybox ]] || die "busybox-static is not installed: apt-get install busybox-static"
	file -L /bin/busybox | grep -q 'statically linked' ||
		die "/bin/busybox is not static (the 'busybox' package is installed): apt-get install busybox-static"
	command -v docker >/dev/null 2>&1 || die "docker is not installed; the multi-node tests need a Docker engine"
	docker info >/dev/null 2>&1 || die "the Docker engine does not answer (docker info failed): start it, or add this user to the docker group"
	cargo fmt --version >/dev/null 2>&1 || die "rustfmt is missing: rustup component add rustfmt"
	cargo clippy --version >/dev/null 2>&1 || die "clippy is missing: rustup component add clippy"
	cargo nextest --version >/dev/null 2>&1 || die "cargo-nextest is missing: cargo install --locked cargo-nextest"
	command -v schemathesis >/dev/null 2>&1 || die "schemathesis is missing: pip install schemathesis"
}

# --- Steps ---------------------------------------------------------------------
results=()
failed=0

# step NAME COMMAND...: runs a check, records PASS/FAIL and carries on, so one
# run reports every problem.
step() {
	local name=$1 started=$SECONDS status
	shift
	log "$name"
	if "$@"; then
		status=PASS
	else
		status=FAIL
		failed=1
	fi
	results+=("$(printf '%-4s  %-14s %4ss' "$status" "$name" $((SECONDS - started)))")
}

skip() {
	results+=("$(printf 'SKIP  %-14s %s' "$1" "$2")")
}

build() {
	cargo build --workspace --all-targets || return 1
	local bin="$target_dir/$CARGO_BUILD_TARGET/debug/capstan"
	if [[ -x $bin ]]; then
		# For tests that find the binary through capstan_testkit::capstan_binary().
		CAPSTAN_BIN="$(pwd)/$bin"
		export CAPSTAN_BIN
		file -L "$bin" | grep -Eq 'statically linked|static-pie linked' || {
			printf 'test.sh: %s is not static\n' "$bin" >&2
			return 1
		}
	fi
}

shell_scripts() {
	local scripts=()
	mapfile -t scripts < <(git ls-files -co --exclude-standard -- '*.sh' .ci/run 2>/dev/null ||
		find scripts deploy .ci -type f \( -name '*.sh' -o -name run \))
	[[ ${#scripts[@]} -eq 0 ]] && return 0
	shellcheck "${scripts[@]}"
}

# Free space where the build and the tests write (the target folder, the
# temporary folder and, usually on the same disk, Docker's storage).
disk_free() {
	df -h --output=avail . 2>/dev/null | tail -n 1 | tr -d ' ' || echo unknown
}

vagrant_validate() {
	# `validate` loads the Vagrantfile and checks its settings; it boots
	# nothing, and --ignore-provider lets it pass without VirtualBox installed.
	# Its state goes under target/ so the work tree stays clean.
	(
		unset VAGRANT_DEFAULT_PROVIDER
		export VAGRANT_CHECKPOINT_DISABLE=1
		export VAGRANT_DOTFILE_PATH="$PWD/$target_dir/vagrant-validate"
		vagrant validate --ignore-provider
	)
}

main() {
	if [[ ${SKIP_INSTALL:-0} != 1 ]]; then
		install_prerequisites
	fi
	check_environment
	log "disk: $(disk_free) free before the build"

	step fmt cargo fmt --all -- --check
	step clippy cargo clippy --workspace --all-targets -- -D warnings
	step build build
	# Doctests before nextest, so nextest's summary is the run's last word.
	step doctests cargo test --workspace --doc
	step tests cargo nextest run --workspace --no-fail-fast \
		--profile "${NEXTEST_PROFILE:-ci}" "$@"
	step schemathesis scripts/schemathesis.sh "$target_dir/$CARGO_BUILD_TARGET/debug/capstan"
	step shellcheck shell_scripts
	if command -v vagrant >/dev/null 2>&1; then
		step vagrant vagrant_validate
	else
		skip vagrant "$vagrant_status"
	fi

	printf '\n==> summary (target %s, RUSTFLAGS=%s, %s disk free at the end)\n' \
		"$CARGO_BUILD_TARGET" "$RUSTFLAGS" "$(disk_free)"
	printf '%s\n' "${results[@]}"
	if [[ $failed -ne 0 ]]; then
		printf 'test.sh: FAILED\n'
		exit 1
	fi
	printf 'test.sh: all checks passed\n'
}

main "$@"
