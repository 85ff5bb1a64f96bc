#!/usr/bin/env bash
# Makes this machine the lab's first manager: `capstan install` creates the
# cluster (CA, admin account, one-manager Raft store) in the data dir, then
# systemd runs the manager. Re-running it leaves an installed manager as is.
#
# Environment:
#   HOST_ADDRESS         address peers and clients reach this manager at (10.20.20.100)
#   MASTER_FQDN          extra certificate name (master.docker-dca.example)
#   ADMIN_PASSWORD_FILE  file holding the admin password (/vagrant/.lab/admin-password)
#   DATA_DIR             capstan's state (/var/lib/capstan)
set -euo pipefail

host_address="${HOST_ADDRESS:-10.20.20.100}"
fqdn="${MASTER_FQDN:-master.docker-dca.example}"
password_file="${ADMIN_PASSWORD_FILE:-/vagrant/.lab/admin-password}"
data_dir="${DATA_DIR:-/var/lib/capstan}"
marker=/var/lib/capstan-lab/installed

if [[ ! -e $marker ]]; then
	[[ -s $password_file ]] || {
		echo "master.sh: no admin password at $password_file (the Vagrantfile writes it on 'vagrant up')" >&2
		exit 1
	}
	capstan install \
		--host-address "$host_address" \
		--san "$fqdn" \
		--san "${fqdn%%.*}" \
		--admin-username admin \
		--admin-password-file "$password_file" \
		--data-dir "$data_dir" \
		--init-only
	install -d -m 0755 "$(dirname "$marker")"
	touch "$marker"
fi

systemctl enable --now capstan-manager.service

# The manager is up when it can print a join command.
for _ in $(seq 60); do
	if join_command=$(capstan token worker --data-dir "$data_dir" 2>/dev/null); then
		printf '%s\n' "$join_command"
		echo "master.sh: manager is running; dashboard at https://$fqdn (user admin)"
		exit 0
	fi
	sleep 2
done
echo "master.sh: the manager did not answer within 2 minutes; see 'journalctl -u capstan-manager'" >&2
exit 1
