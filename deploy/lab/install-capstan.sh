#!/usr/bin/env bash
# Installs the capstan binary (built on the host, shared through the synced
# folder) and its systemd units. Enables nothing: master.sh and join.sh start
# the role a machine has once it is installed or joined.
#
# Environment:
#   CAPSTAN_SOURCE  the binary to install (default /vagrant/.lab/bin/capstan)
#   UNIT_SOURCE     folder with the .service files (default /vagrant/deploy/systemd)
set -euo pipefail

source_binary="${CAPSTAN_SOURCE:-/vagrant/.lab/bin/capstan}"
unit_source="${UNIT_SOURCE:-/vagrant/deploy/systemd}"

if [[ ! -f $source_binary ]]; then
	echo "install-capstan.sh: $source_binary is missing; build capstan on the host and run 'vagrant reload --provision'" >&2
	exit 1
fi

install -D -m 0755 "$source_binary" /usr/local/bin/capstan
install -d -m 0700 /var/lib/capstan
install -d -m 0755 /etc/capstan
for unit in capstan-manager.service capstan-agent.service capstan-registry.service; do
	install -m 0644 "$unit_source/$unit" "/etc/systemd/system/$unit"
done
systemctl daemon-reload

echo "install-capstan.sh: installed /usr/local/bin/capstan and the capstan systemd units"
