#!/bin/sh
# TourPulse hostapd action script (OpenWrt, BusyBox ash / any POSIX sh).
#
# hostapd_cli -a runs it as:  <script> <ifname> <event> <client-mac> [extra...]
# For AP-STA-CONNECTED / AP-STA-DISCONNECTED it logs one line tagged with the AP id:
#   tourpulse-ap[<ap-id>]: <ifname>: AP-STA-CONNECTED <mac><TAB>ssid=<ssid>
# OpenWrt's logd forwards it (system.log_ip, set by tourpulse-provision.sh) to the site's
# TourPulse Wi-Fi agent, which pseudonymises the MAC. The MAC never goes further than the
# site agent: nothing here talks to the central MQTT broker.
#
# Config (uci, /etc/config/tourpulse): tourpulse.agent.ap_id; env TOURPULSE_AP_ID overrides.
# HOSTAPD_RUN_DIR (set by tourpulse-hostapd.init) is where hostapd's control sockets are.

IFNAME="$1"
EVENT="$2"
MAC="$3"

case "$EVENT" in
	AP-STA-CONNECTED|AP-STA-DISCONNECTED) ;;
	*) exit 0 ;;
esac

case "$MAC" in
	[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]:[0-9a-fA-F][0-9a-fA-F]) ;;
	*) logger -t tourpulse-ap "ignoring $EVENT with a malformed address"; exit 0 ;;
esac

AP_ID="${TOURPULSE_AP_ID:-$(uci -q get tourpulse.agent.ap_id)}"
if [ -z "$AP_ID" ]; then
	AP_ID="$(uci -q get system.@system[0].hostname)"
fi

RUN_DIR="${HOSTAPD_RUN_DIR:-/var/run/hostapd}"
SSID="$(hostapd_cli -p "$RUN_DIR" -i "$IFNAME" get_config 2>/dev/null | sed -n 's/^ssid=//p' | head -n 1)"
TAB="$(printf '\t')"

logger -t "tourpulse-ap[$AP_ID]" "$IFNAME: $EVENT $MAC${SSID:+${TAB}ssid=$SSID}"
