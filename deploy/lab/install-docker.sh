#!/usr/bin/env bash
# Installs Docker Engine from Debian's own packages (docker.io), which every
# capstan node runs its tasks on, and lets the vagrant user use it.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

if ! command -v docker >/dev/null 2>&1; then
	apt-get -qq update
	apt-get -qq install -y --no-install-recommends docker.io ca-certificates curl >/dev/null
fi
systemctl enable --now docker.service

if id vagrant >/dev/null 2>&1; then
	usermod -aG docker vagrant
fi

docker version --format 'install-docker.sh: Docker Engine {{.Server.Version}} is running'
