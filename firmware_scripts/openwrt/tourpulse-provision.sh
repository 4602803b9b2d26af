#!/bin/sh
# Provision an OpenWrt AP to report client (dis)associations to the TourPulse site agent.
#
#   tourpulse-provision.sh --ap-id ben-thanh-market-ap01 --agent 10.20.0.5 [--port 514]
#
# Sets /etc/config/tourpulse (AP id), points logd's remote syslog at the agent (UDP),
# installs the action script and enables the procd service that runs hostapd_cli -a.

set -eu

AP_ID=""
AGENT=""
PORT="514"
PREFIX="${TOURPULSE_PREFIX:-}"   # install root (tests use a temporary directory)
SRC_DIR="$(cd "$(dirname "$0")" && pwd)"

usage() {
	echo "usage: $0 --ap-id <ap-id> --agent <host> [--port <udp-port>]" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
		--ap-id) AP_ID="${2:-}"; shift 2 ;;
		--agent) AGENT="${2:-}"; shift 2 ;;
		--port) PORT="${2:-}"; shift 2 ;;
		-h|--help) usage ;;
		*) echo "unknown option: $1" >&2; usage ;;
	esac
done

if [ -z "$AP_ID" ] || [ -z "$AGENT" ]; then usage; fi
case "$AP_ID" in
	*[!a-z0-9._-]*|[!a-z0-9]*) echo "invalid AP id: $AP_ID" >&2; exit 2 ;;
esac
case "$PORT" in
	''|*[!0-9]*) echo "invalid port: $PORT" >&2; exit 2 ;;
esac

[ -f "$PREFIX/etc/config/tourpulse" ] || : > "$PREFIX/etc/config/tourpulse"
uci -q delete tourpulse.agent || true
uci set tourpulse.agent=agent
uci set tourpulse.agent.ap_id="$AP_ID"
uci set tourpulse.agent.host="$AGENT"
uci set tourpulse.agent.port="$PORT"
uci commit tourpulse

uci set system.@system[0].log_ip="$AGENT"
uci set system.@system[0].log_port="$PORT"
uci set system.@system[0].log_proto="udp"
uci commit system

mkdir -p "$PREFIX/usr/libexec/tourpulse" "$PREFIX/etc/init.d"
cp "$SRC_DIR/tourpulse-hostapd-action.sh" "$PREFIX/usr/libexec/tourpulse/hostapd-action.sh"
cp "$SRC_DIR/tourpulse-hostapd.init" "$PREFIX/etc/init.d/tourpulse-hostapd"
chmod 0755 "$PREFIX/usr/libexec/tourpulse/hostapd-action.sh" "$PREFIX/etc/init.d/tourpulse-hostapd"

if [ -z "$PREFIX" ]; then
	/etc/init.d/log restart
	/etc/init.d/tourpulse-hostapd enable
	/etc/init.d/tourpulse-hostapd restart
fi
echo "tourpulse: $AP_ID reports to $AGENT:$PORT/udp"
