# Shared scaffolding for the shell tests and benches (sourced, not run).
#
#   scratch_dir NAME
#       DIR = a fresh /tmp/NAME.XXXXXX, PIDS = (); on exit every PID in PIDS
#       is killed and reaped and DIR removed, even when the script fails.
#   nsd_start RUNDIR ZONESDIR IP PORT OPTIONS ZONE...
#       Starts NSD in the foreground (-d) on IP@PORT with its state under
#       RUNDIR, serving each ZONE from ZONESDIR/ZONE.zone; OPTIONS holds extra
#       "key: value" lines for its server: section (may be empty). The PID is
#       in NSD_PID and appended to PIDS. No chroot and no user switch, so NSD
#       needs no system configuration and no root.

scratch_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$DIR"
}

scratch_dir() {
    DIR=$(mktemp -d "/tmp/$1.XXXXXX")
    PIDS=()
    trap scratch_cleanup EXIT
}

nsd_start() {
    local rundir=$1 zonesdir=$2 ip=$3 port=$4 options=$5 zone
    shift 5
    mkdir -p "$rundir"
    {
        cat <<CONF
server:
  ip-address: $ip@$port
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "$zonesdir"
  database: ""
  pidfile: "$rundir/nsd.pid"
  xfrdfile: "$rundir/xfrd.state"
  zonelistfile: "$rundir/zone.list"
  logfile: "$rundir/nsd.log"
  server-count: 1
CONF
        [ -n "$options" ] && printf '%s\n' "$options" | sed 's/^/  /'
        printf 'remote-control:\n  control-enable: no\n'
        for zone in "$@"; do printf 'zone:\n  name: %s\n  zonefile: %s.zone\n' "$zone" "$zone"; done
    } > "$rundir/nsd.conf"
    /usr/sbin/nsd -d -c "$rundir/nsd.conf" > "$rundir/nsd.out" 2>&1 &
    NSD_PID=$!
    PIDS+=("$NSD_PID")
}
