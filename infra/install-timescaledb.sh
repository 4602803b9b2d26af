#!/usr/bin/env bash
# Build and install TimescaleDB 2.28.3 into the machine's PostgreSQL 15 from the unmodified
# source in ../shared/vendor (no registry reachable here serves it). Idempotent: does
# nothing when the extension is already installed. Without the source, says once that the
# project runs on plain PostgreSQL, and succeeds: everything works there too.
#
# Operators install TimescaleDB from Timescale's own packages instead (see README).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=2.28.3
src=${TP_TIMESCALEDB_SOURCE:-$here/../../shared/vendor/timescaledb-$version.tar.gz}
pg_config=/usr/lib/postgresql/15/bin/pg_config
sha256=ec0a79e3e2e82baadcf08c177e78e4447fe20d0b7c4d15be2343fa2750593955

if [[ -x $pg_config ]] && [[ -f "$($pg_config --sharedir)/extension/timescaledb--$version.sql" ]]; then
    echo "timescaledb: $version installed"
    exit 0
fi
if [[ ! -f $src ]]; then
    echo "timescaledb: source $src not found: running on plain PostgreSQL (same schema, no hypertables)"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "timescaledb: not root: skipping the build (plain PostgreSQL)"
    exit 0
fi
echo "$sha256  $src" | sha256sum -c --quiet - || { echo "timescaledb: checksum mismatch for $src" >&2; exit 1; }

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
echo "timescaledb: building $version from $src (about a minute) ..."
tar xzf "$src" -C "$build"
cd "$build/timescaledb-$version"
./bootstrap -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DLINTER=OFF \
    -DCMAKE_BUILD_TYPE=Release -DPG_CONFIG="$pg_config" >"$build/bootstrap.log" 2>&1 \
    || { tail -30 "$build/bootstrap.log" >&2; exit 1; }
make -C build -j"$(nproc)" >"$build/make.log" 2>&1 || { tail -30 "$build/make.log" >&2; exit 1; }
make -C build install >"$build/install.log" 2>&1 || { tail -30 "$build/install.log" >&2; exit 1; }
echo "timescaledb: $version installed into $($pg_config --pkglibdir)"
