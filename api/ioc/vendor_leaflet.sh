#!/bin/sh
# Re-vendor Leaflet for the IOC console from the npm registry (run by hand when upgrading;
# the files are committed so nothing is downloaded at build or test time).
set -eu
VERSION="${1:-1.9.4}"
DEST="$(cd "$(dirname "$0")" && pwd)/static/vendor/leaflet"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "leaflet@$VERSION" >/dev/null && tar xzf "leaflet-$VERSION.tgz")
mkdir -p "$DEST"
cp "$WORK/package/dist/leaflet.js" "$WORK/package/dist/leaflet.css" "$WORK/package/LICENSE" "$DEST/"
echo "$VERSION" > "$DEST/VERSION"
echo "leaflet $VERSION vendored into $DEST"
