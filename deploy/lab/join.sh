#!/usr/bin/env bash
# Joins this machine to the lab cluster as a worker, with the join command
# master printed (the Vagrantfile copies it to .lab/join-worker.sh), then lets
# systemd run the agent. Re-running it leaves a joined node as is.
#
# Only a `capstan join ...` line is taken from the file, and it is run as
# arguments, never through a shell.
#
# Environment:
#   JOIN_COMMAND_FILE  output of `capstan token worker` (/vagrant/.lab/join-worker.sh)
#   DATA_DIR           capstan's state (/var/lib/capstan)
set -euo pipefail

join_file="${JOIN_COMMAND_FILE:-/vagrant/.lab/join-worker.sh}"
data_dir="${DATA_DIR:-/var/lib/capstan}"
marker=/var/lib/capstan-lab/joined

if [[ ! -e $marker ]]; then
	line=$(grep -Eo 'capstan join [^#]+' "$join_file" 2>/dev/null | head -n 1 || true)
	if [[ -z $line ]]; then
		echo "join.sh: no 'capstan join' command in $join_file; bring master up first" \
			"('vagrant up master'), then 'vagrant reload --provision $(hostname -s)'" >&2
		exit 1
	fi
	read -r -a join <<<"$line"
	capstan "${join[@]:1}" --data-dir "$data_dir" --init-only
	install -d -m 0755 "$(dirname "$marker")"
	touch "$marker"
fi

systemctl enable --now capstan-agent.service
echo "join.sh: $(hostname -f) joined the cluster; the agent is running"
