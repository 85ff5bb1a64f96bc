#!/usr/bin/env bash
# Tutorial step 5 on the registry machine (already joined by join.sh):
# registers a registry with the control plane, as Admin Settings > Registry
# shows, and lets systemd run it. Re-running it leaves an installed registry
# as is.
#
# Environment:
#   UCP_URL              the control plane (https://master.docker-dca.example)
#   REGISTRY_HOST        the name clients use (registry.docker-dca.example)
#   ADMIN_PASSWORD_FILE  the admin's password (/vagrant/.lab/admin-password)
#   DATA_DIR             capstan's state (/var/lib/capstan)
set -euo pipefail

ucp_url="${UCP_URL:?UCP_URL is required}"
registry_host="${REGISTRY_HOST:?REGISTRY_HOST is required}"
password_file="${ADMIN_PASSWORD_FILE:-/vagrant/.lab/admin-password}"
data_dir="${DATA_DIR:-/var/lib/capstan}"

if [[ ! -e $data_dir/registry/registry.toml ]]; then
	capstan registry install \
		--ucp-url "$ucp_url" \
		--ucp-ca "@$data_dir/pki/ca.crt" \
		--ucp-username admin \
		--ucp-password-file "$password_file" \
		--host "$registry_host" \
		--data-dir "$data_dir" \
		--init-only
fi

systemctl enable --now capstan-registry.service
echo "registry.sh: the registry serves https://$registry_host (docker login with the cluster's users)"
