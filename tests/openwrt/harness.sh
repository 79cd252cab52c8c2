#!/bin/sh
# Runs an OpenWrt procd init script's start_service against a stand-in
# for the UCI and procd shell functions (the real ones run in
# tests/openwrt_runtime.rs; this is the quick check of the mapping), and writes each instance's
# command line to OUTDIR/NAME, one argument per line, its other procd
# parameters to OUTDIR/NAME.params, and what reached procd and the system
# log in order to OUTDIR/events.
#   sh harness.sh INIT_SCRIPT UCI_CONFIG_FILE OUTDIR [reload]
# With "triggers", runs service_triggers. With "reload", runs reload_service (as `/etc/init.d/socksd reload` does)
# instead of start_service.
set -eu
INIT="$1"
CONFIG_FILE="$2"
OUT="$3"
ACTION="${4:-start}"
mkdir -p "$OUT"
: >"$OUT/events"
event() { printf '%s\n' "$*" >>"$OUT/events"; }
logger() { event "logger $*"; }

# --- UCI: the /etc/config format is shell once these three exist. -----
CONFIG_SECTIONS=""
CONFIG_SECTION=""
config() {
	CONFIG_SECTION="$2"
	CONFIG_SECTIONS="$CONFIG_SECTIONS $2"
	eval "CONFIG_${2}_TYPE=\$1"
}
# As OpenWrt's functions.sh: "option" sets the value; "list" adds an item,
# counts them in NAME_LENGTH, and appends it, space-separated, to the value
# that config_get returns.
option() {
	eval "CONFIG_${CONFIG_SECTION}_$1=\$2"
}
list() {
	local n v
	eval "n=\${CONFIG_${CONFIG_SECTION}_$1_LENGTH:-0}"
	eval "v=\${CONFIG_${CONFIG_SECTION}_$1:-}"
	n=$((n + 1))
	eval "CONFIG_${CONFIG_SECTION}_$1_ITEM$n=\$2"
	eval "CONFIG_${CONFIG_SECTION}_$1_LENGTH=$n"
	eval "CONFIG_${CONFIG_SECTION}_$1=\${v:+\$v }\$2"
}
config_load() {
	. "$CONFIG_FILE"
}
# config_get VAR SECTION OPTION [DEFAULT]: the default when unset or empty.
config_get() {
	local __v
	eval "__v=\${CONFIG_$2_$3:-}"
	[ -z "$__v" ] && __v="${4:-}"
	eval "$1=\$__v"
}
config_get_bool() {
	local __b
	config_get __b "$2" "$3" "${4:-}"
	case "$__b" in
	1 | on | true | yes | enabled) __b=1 ;;
	0 | off | false | no | disabled) __b=0 ;;
	*) __b="${4:-}" ;;
	esac
	eval "$1=\$__b"
}
config_list_foreach() {
	local s="$1" o="$2" f="$3" n i=1 v
	shift 3
	eval "n=\${CONFIG_${s}_${o}_LENGTH:-0}"
	while [ "$i" -le "$n" ]; do
		eval "v=\${CONFIG_${s}_${o}_ITEM$i}"
		"$f" "$v" "$@"
		i=$((i + 1))
	done
}
config_foreach() {
	local f="$1" t="$2" s ty
	shift 2
	for s in $CONFIG_SECTIONS; do
		eval "ty=\${CONFIG_${s}_TYPE}"
		[ "$ty" = "$t" ] && "$f" "$s" "$@"
	done
	return 0
}

# --- procd: record the command line of each instance. ------------------
CUR=""
procd_open_instance() {
	CUR="$OUT/$1"
	: >"$CUR"
	: >"$CUR.params"
	: >"$CUR.data"
}
procd_set_param() {
	if [ "$1" = command ]; then
		shift
		: >"$CUR"
		for a in "$@"; do printf '%s\n' "$a" >>"$CUR"; done
	else
		echo "$*" >>"$CUR.params"
	fi
	return 0
}
procd_add_jail() { echo "jail $*" >>"$CUR.params"; }
procd_add_jail_mount() { echo "jail_mount $*" >>"$CUR.params"; }
procd_append_param() {
	if [ "$1" = command ]; then
		shift
		for a in "$@"; do printf '%s\n' "$a" >>"$CUR"; done
	fi
	return 0
}
procd_close_instance() { CUR=""; }
procd_add_reload_trigger() { :; }
# procd data (firewall rules): every call, in order, to OUTDIR/NAME.data.
procd_open_data() { echo "open_data" >>"$CUR.data"; }
procd_close_data() { echo "close_data" >>"$CUR.data"; }
json_add_array() { echo "array $1" >>"$CUR.data"; }
json_close_array() { echo "end_array" >>"$CUR.data"; }
json_add_object() { echo "object" >>"$CUR.data"; }
json_close_object() { echo "end_object" >>"$CUR.data"; }
json_add_string() { echo "$1=$2" >>"$CUR.data"; }
procd_add_reload_interface_trigger() { event "interface_trigger $1"; }
procd_add_raw_trigger() { event "raw_trigger $*"; }
# rc.common's: the command and its help line (shown in tests/openwrt_runtime.rs).
extra_command() { :; }

# --- network.sh: interfaces from NET_<iface>_{IPV4,IPV6,SUBNETS,SUBNETS6,
# DEVICE}, as netifd would report them; an interface is up when it has an
# address or NET_<iface>_UP=1. -----------------------------------------
network_is_up() { eval "[ -n \"\${NET_$1_IPV4:-}\${NET_$1_IPV6:-}\${NET_$1_UP:-}\" ]"; }
network_get_ipaddrs() { eval "$1=\${NET_$2_IPV4:-}"; }
network_get_ipaddrs6() { eval "$1=\${NET_$2_IPV6:-}"; }
network_get_subnets() { eval "$1=\${NET_$2_SUBNETS:-}"; }
network_get_subnets6() { eval "$1=\${NET_$2_SUBNETS6:-}"; }
network_get_device() {
	eval "$1=\${NET_$2_DEVICE:-}"
	eval "[ -n \"\${NET_$2_DEVICE:-}\" ]"
}
procd_send_signal() { event "signal $*"; }
# rc.common's start, as reload_service calls it.
start() {
	event start
	start_service
}

. "$INIT"
# What touches the router itself is run for real under OpenWrt's runtime
# (tests/openwrt_runtime.rs): the jail's resolver copy, the users file's
# modes, and `socksd --check` (the Rust tests call --check themselves).
dns() { event dns; }
socksd_users_readable() { :; }
socksd_check() { :; }
case "$ACTION" in
reload) reload_service ;;
triggers) service_triggers ;;
stats) stats ;;
*) start_service ;;
esac
