#!/usr/bin/env bash
# Install the Debian packages listed in infra/system-packages.txt (idempotent).
#
# Runs apt-get only for packages that are missing, and `apt-get update` at most once,
# only when something is missing (a fresh CI machine may have stale package lists).
# Without root it only reports what is missing: a developer's box may already have it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list=${1:-$here/system-packages.txt}

mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e 's/^[[:space:]]*//' "$list" | grep -v '^$')

missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    echo "deps: all ${#wanted[@]} system packages installed"
    exit 0
fi

echo "deps: missing: ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
    echo "deps: not root: skipping apt-get; install them with: sudo apt-get install ${missing[*]}"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Service packages must not try to start daemons via init scripts during the install:
# `tourpulse stack up` starts what the tests need, on its own terms.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi

echo "deps: apt-get update ..."
apt-get update -qq
echo "deps: apt-get install ${missing[*]} ..."
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "deps: installed ${#missing[@]} package(s)"
