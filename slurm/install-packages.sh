#!/usr/bin/env bash
# Install the Debian packages for the local single-node Slurm cluster (slurm/local-cluster.sh).
#
# Idempotent: exits at once when every needed binary is already present. Otherwise runs
# `apt-get update` once and installs the packages non-interactively. Daemons are NOT started
# (and none are left running): a temporary /usr/sbin/policy-rc.d answering 101 ("action
# forbidden") blocks invoke-rc.d during the install and is removed afterwards.
#
# Exit codes: 0 installed (or already present); 2 cannot install here (not root / no apt-get);
# anything else: apt-get failed.
set -euo pipefail

PACKAGES=(slurm-wlm slurmctld slurmd munge slurm-client slurmdbd mariadb-server)

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

all_present() {
    have slurmctld && have slurmd && have slurmdbd && have munged && have sbatch &&
        { have mariadbd || have mysqld; }
}

if all_present; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-packages.sh: apt-get not found; cannot install Slurm here" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-packages.sh: must run as root to install packages" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive
POLICY=/usr/sbin/policy-rc.d
BACKUP=""
cleanup() {
    rm -f "$POLICY"
    if [ -n "$BACKUP" ] && [ -e "$BACKUP" ]; then
        mv -f "$BACKUP" "$POLICY"
    fi
}
if [ -e "$POLICY" ]; then
    BACKUP="$(mktemp /usr/sbin/policy-rc.d.matrixhpc.XXXXXX)"
    cp -p "$POLICY" "$BACKUP"
fi
trap cleanup EXIT
printf '#!/bin/sh\n# temporary: slurm/install-packages.sh blocks service starts\nexit 101\n' >"$POLICY"
chmod 755 "$POLICY"

APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
apt-get "${APT_OPTS[@]}" update -qq
apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${PACKAGES[@]}"

if ! all_present; then
    echo "install-packages.sh: packages installed but a binary is still missing" >&2
    exit 1
fi
