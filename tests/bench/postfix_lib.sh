# shellcheck shell=bash
# Private stock Postfix instances for benchmarks and tests (source this file).
#
#   pf_start DIR HOST:PORT [MAIN_CF_LINE]...   start one; returns once it greets on HOST:PORT
#   pf_stop DIR                                stop it (SIGTERM, then SIGKILL by PID)
#   pf_queued DIR [SUBDIR...]                  files in its queue (default: incoming active deferred)
#   pf_log DIR                                 path of its log file
#   bench_teardown RC SCRATCH PID...           end of a Postfix-vs-Ricochet bench:
#       kill the PIDs, stop SCRATCH/postfix and the cluster in SCRATCH/cluster,
#       remove SCRATCH (kept, with a note, when RC != 0 and RICOCHET_KEEP is set)
#
# Everything lives under DIR (made if missing; DIR and its parents must be
# searchable by the postfix user, so not under a 0700 directory): DIR/etc
# (main.cf, master.cf), DIR/queue, DIR/data, DIR/maillog. The instance never
# reads /etc/postfix/main.cf, never touches the system queue, listens only on
# HOST:PORT (smtpd) and makes no DNS queries (no client name lookup; the smtp
# client has DNS off, so a relayhost must be an address: [IP]:PORT).
# Extra main.cf lines come last and win, e.g.:
#   pf_start "$d" 127.0.4.20:2525 'relayhost = [127.0.4.21]:2526'   # relay to a smtp-sink
#   pf_start "$d" 127.0.4.20:2525 'defer_transports = smtp'          # accept and keep queued
# The default destination for mail to other domains is the smtp transport
# with DNS off: without relayhost or defer_transports mail is deferred after
# a failed lookup attempt (no packet leaves the machine).
#
# Why an earlier attempt hung (smtp-source waited for ever): `postfix start`
# failed silently (it logs to syslog, and there is no /dev/log here), on
# `maillog_file` outside `maillog_file_prefixes`; a master left over from a
# start with chroot services (no etc/ files in the queue directory), a 0700
# scratch directory the postfix user cannot enter, or smtpd's reverse DNS
# lookup of the client (the resolver is not reachable) all stall the greeting
# while the kernel accepts the connection. Here: log prefix set, chroot off
# for every service, client name lookup off, DIR made searchable, and
# pf_start waits for a real 220 greeting (and fails with the log otherwise).

pf_log() { echo "$1/maillog"; }

pf_start() {
  local dir=$1 listen=$2; shift 2
  local host=${listen%:*} port=${listen##*:}
  case "$host" in 127.*) ;; *) echo "pf_start: $listen is not a 127.x address" >&2; return 2 ;; esac
  if [ -f "$dir/queue/pid/master.pid" ] && kill -0 "$(tr -d ' ' < "$dir/queue/pid/master.pid")" 2>/dev/null; then
    echo "pf_start: a Postfix already runs in $dir" >&2; return 1
  fi
  mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
  chmod 755 "$dir" "$dir/etc"
  # queue_directory owned by root (Postfix checks), data_directory by postfix
  chown root:root "$dir/queue" && chmod 755 "$dir/queue"
  chown postfix:postfix "$dir/data" && chmod 700 "$dir/data"
  : > "$dir/maillog"
  cp /etc/postfix/dynamicmaps.cf "$dir/etc/" 2>/dev/null || true
  [ -d /etc/postfix/dynamicmaps.cf.d ] && cp -r /etc/postfix/dynamicmaps.cf.d "$dir/etc/"
  cat > "$dir/etc/main.cf" <<MAIN
# private bench instance made by tests/bench/postfix_lib.sh
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = bench.test
mydestination =
alias_maps =
alias_database =
inet_interfaces = all
smtp_bind_address = $host
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
biff = no
append_dot_mydomain = no
smtputf8_enable = yes
MAIN
  local line
  for line in "$@"; do printf '%s\n' "$line" >> "$dir/etc/main.cf"; done
  # master.cf: the stock services, no chroot (nothing to copy into the queue
  # directory), the stock smtpd on *:25 replaced by ours on HOST:PORT
  cp /usr/share/postfix/master.cf.dist "$dir/etc/master.cf"
  postconf -c "$dir/etc" -MX smtp/inet
  postconf -c "$dir/etc" -M "$listen/inet=$listen inet n - n - - smtpd"
  postconf -c "$dir/etc" -F '*/*/chroot = n'
  local out
  if ! out=$(postfix -c "$dir/etc" start 2>&1); then
    # postfix(1) reports to syslog only; rerun the check on a pty to see why
    echo "pf_start: postfix start failed: $out" >&2
    script -qc "postfix -c '$dir/etc' check" /dev/null >&2 || true
    tail -20 "$dir/maillog" >&2
    return 1
  fi
  # ready when smtpd (not only master's socket) answers with 220
  for _ in $(seq 300); do
    if timeout 5 python3 - "$host" "$port" <<'PY' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=4)
ok = s.recv(512).startswith(b"220")
s.sendall(b"QUIT\r\n"); s.close()
sys.exit(0 if ok else 1)
PY
    sleep 0.1
  done
  echo "pf_start: no 220 greeting on $listen; log:" >&2
  tail -20 "$dir/maillog" >&2
  pf_stop "$dir"
  return 1
}

pf_stop() {
  local dir=$1 pidf="$1/queue/pid/master.pid" pid kids=() p
  [ -f "$pidf" ] || return 0
  pid=$(tr -d ' \n' < "$pidf")
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then rm -f "$pidf"; return 0; fi
  # master's children, by PID, in case master dies before they do
  for p in /proc/[0-9]*; do
    [ "$(awk '{print $4}' "$p/stat" 2>/dev/null)" = "$pid" ] && kids+=("${p#/proc/}")
  done
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  for p in "${kids[@]+"${kids[@]}"}"; do
    case "$(readlink "/proc/$p/exe" 2>/dev/null)" in /usr/lib/postfix/*) kill -KILL "$p" 2>/dev/null || true ;; esac
  done
  rm -f "$pidf"
}

pf_queued() {
  local dir=$1; shift
  [ $# -gt 0 ] || set -- incoming active deferred
  local q n=0
  for q in "$@"; do
    [ -d "$dir/queue/$q" ] && n=$((n + $(find "$dir/queue/$q" -type f | wc -l)))
  done
  echo "$n"
}

bench_teardown() {
  local rc=$1 scratch=$2 p here
  shift 2
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  for p in "$@"; do kill "$p" 2>/dev/null; done
  for p in "$@"; do wait "$p" 2>/dev/null; done
  pf_stop "$scratch/postfix"
  "$here/scripts/cluster" down --dir "$scratch/cluster" >/dev/null 2>&1 || true
  if [ "$rc" = 0 ] || [ -z "${RICOCHET_KEEP:-}" ]; then
    rm -rf "$scratch"
  else
    echo "failed; logs kept in $scratch (cluster/n*/ricochetd.log, postfix/maillog)" >&2
  fi
}
