#!/usr/bin/env bash
# Starts or stops a single-node OpenStack Swift with the s3api and tempauth middleware on 127.0.0.1, for
# the S3 backend tests. Everything it creates (configuration, rings, object directory, pid and log files)
# lives in one temporary directory, and a private memcached serves tempauth's tokens.
#
#   eval "$(scripts/swift-test-server.sh start)"    # prints the shell assignments listed below
#   scripts/swift-test-server.sh stop "$SWIFT_DIR"  # stops every process and removes the directory
#   scripts/swift-test-server.sh stop-servers "$SWIFT_DIR"   # stops the Swift servers, keeps the objects
#   scripts/swift-test-server.sh start-servers "$SWIFT_DIR"  # starts them again on the same ports
#
# stop-servers and start-servers simulate an outage of the S3 service: memcached, the configuration and
# the stored objects stay, so after start-servers the endpoint, the credentials and the data are as before.
# start prints SWIFT_DIR, S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY. The
# access key has tempauth's form account:user. Needs Debian's swift, swift-proxy, swift-account,
# swift-container, swift-object and memcached packages, and a file system with user extended
# attributes (ext4, xfs) under TMPDIR, where Swift keeps the objects.
set -euo pipefail

ACCOUNT=test
USER_NAME=tester
SECRET=testing
REGION=us-east-1
READY_TIMEOUT_SECONDS=60
# Port of each storage server (account, container, object) by kind, set by start.
declare -A SERVER_PORTS

die() {
  echo "swift-test-server: $*" >&2
  exit 1
}

# Prints a TCP port on 127.0.0.1 that is free right now. Another process may take it before Swift
# binds it; start then fails and reports the log.
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts a command in the background with its output in <dir>/log/<name>.log and its pid in <dir>/run/<name>.pid.
spawn() {
  local dir=$1 name=$2
  shift 2
  nohup "$@" >"$dir/log/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/run/$name.pid"
}

write_configs() {
  local dir=$1 memcached_port=$2 proxy_port=$3
  local user
  user=$(id -un)
  local hash_suffix hash_prefix
  hash_suffix=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  hash_prefix=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

  cat >"$dir/etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = $hash_suffix
swift_hash_path_prefix = $hash_prefix

[storage-policy:0]
name = Policy-0
default = yes
EOF

  # workers = 0 serves every request in the one process, so each server has exactly one pid to stop.
  local common="bind_ip = 127.0.0.1
workers = 0
user = $user
swift_dir = $dir/etc
devices = $dir/srv
mount_check = false
log_level = INFO"

  local kind
  for kind in account container object; do
    cat >"$dir/etc/$kind-server.conf" <<EOF
[DEFAULT]
bind_port = ${SERVER_PORTS[$kind]}
$common

[pipeline:main]
pipeline = $kind-server

[app:$kind-server]
use = egg:swift#$kind
EOF
  done

  # max_upload_part_num matches AWS S3's 10,000 parts (Swift's default is 1,000).
  cat >"$dir/etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_port = $proxy_port
$common

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:s3api]
use = egg:swift#s3api
location = $REGION
max_upload_part_num = 10000

[filter:tempauth]
use = egg:swift#tempauth
user_${ACCOUNT}_${USER_NAME} = $SECRET .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$memcached_port
EOF
  # The remaining filters need no options: the section name, then the middleware's entry point.
  local filter
  for filter in catch_errors:catch_errors gatekeeper:gatekeeper healthcheck:healthcheck proxy-logging:proxy_logging \
    listing_formats:listing_formats bulk:bulk copy:copy slo:slo dlo:dlo; do
    printf '\n[filter:%s]\nuse = egg:swift#%s\n' "${filter%%:*}" "${filter#*:}" >>"$dir/etc/proxy-server.conf"
  done
}

build_rings() {
  local dir=$1
  local kind
  for kind in account container object; do
    # One partition power of 6 (64 partitions), one replica, one device d1 on this node.
    swift-ring-builder "$dir/etc/$kind.builder" create 6 1 1 >/dev/null
    swift-ring-builder "$dir/etc/$kind.builder" add "r1z1-127.0.0.1:${SERVER_PORTS[$kind]}/d1" 100 >/dev/null
    swift-ring-builder "$dir/etc/$kind.builder" rebalance >/dev/null
  done
}

# Returns success when a server responds to HTTP on the port, with any status.
responds() {
  curl -sS -o /dev/null --max-time 2 "http://127.0.0.1:$1/healthcheck" 2>/dev/null
}

# Waits until the proxy's /healthcheck returns 200 and the account, container and object servers respond.
wait_until_ready() {
  local dir=$1 proxy_port=$2
  shift 2
  local deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
  local port ready
  for (( ; ; )); do
    ready=yes
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$proxy_port/healthcheck" 2>/dev/null || ready=no
    for port in "$@"; do
      responds "$port" || ready=no
    done
    [ $ready = yes ] && return 0

    local pid_file
    for pid_file in "$dir"/run/*.pid; do
      if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        local name
        name=$(basename "$pid_file" .pid)
        echo "swift-test-server: $name exited during start-up; its log:" >&2
        tail -n 40 "$dir/log/$name.log" >&2 || true
        stop "$dir"
        exit 1
      fi
    done
    if ((SECONDS > deadline)); then
      echo "swift-test-server: Swift did not respond within ${READY_TIMEOUT_SECONDS} s; the proxy log:" >&2
      tail -n 40 "$dir/log/proxy.log" >&2 || true
      stop "$dir"
      exit 1
    fi
    sleep 0.2
  done
}

start() {
  local program
  for program in swift-proxy-server swift-account-server swift-container-server swift-object-server swift-ring-builder memcached curl; do
    command -v "$program" >/dev/null || die "$program is missing; install it with: apt-get install -y swift swift-proxy swift-account swift-container swift-object memcached curl"
  done

  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/swift-test-XXXXXX")
  mkdir -p "$dir/etc" "$dir/srv/d1" "$dir/run" "$dir/log"
  # Swift keeps object metadata in user extended attributes and fails every PUT without them.
  if ! /usr/bin/python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.swift-test", b"1")' "$dir/srv/d1" 2>/dev/null; then
    rm -rf "$dir"
    die "the file system under ${TMPDIR:-/tmp} has no user extended attributes; set TMPDIR to an ext4 or xfs directory."
  fi

  local memcached_port proxy_port kind
  memcached_port=$(free_port)
  proxy_port=$(free_port)
  for kind in account container object; do
    SERVER_PORTS[$kind]=$(free_port)
  done

  write_configs "$dir" "$memcached_port" "$proxy_port"
  build_rings "$dir"

  spawn "$dir" memcached memcached -l 127.0.0.1 -p "$memcached_port" -U 0 -m 16 -u "$(id -un)"
  for kind in account container object proxy; do
    spawn "$dir" "$kind" "swift-$kind-server" "$dir/etc/$kind-server.conf" --verbose
  done
  wait_until_ready "$dir" "$proxy_port" "${SERVER_PORTS[@]}"

  echo "SWIFT_DIR=$dir"
  echo "S3_ENDPOINT=http://127.0.0.1:$proxy_port"
  echo "S3_REGION=$REGION"
  echo "S3_ACCESS_KEY_ID=$ACCOUNT:$USER_NAME"
  echo "S3_SECRET_ACCESS_KEY=$SECRET"
}

# Sends SIGTERM to the processes of the given pid files, gives each 10 s to exit, then sends SIGKILL and
# removes its pid file.
stop_processes() {
  local pid_file pid attempt
  for pid_file in "$@"; do
    [ -e "$pid_file" ] && kill -TERM "$(cat "$pid_file")" 2>/dev/null || true
  done
  for pid_file in "$@"; do
    [ -e "$pid_file" ] || continue
    pid=$(cat "$pid_file")
    for attempt in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pid_file"
  done
}

# Prints the bind_port of a server's configuration file.
configured_port() {
  sed -n 's/^bind_port = //p' "$1" | head -n 1
}

stop_servers() {
  local dir=$1
  [ -d "$dir/run" ] || die "$dir is not a directory made by 'start'."
  stop_processes "$dir/run/proxy.pid" "$dir/run/account.pid" "$dir/run/container.pid" "$dir/run/object.pid"
}

start_servers() {
  local dir=$1 kind
  [ -d "$dir/run" ] || die "$dir is not a directory made by 'start'."
  local ports=()
  for kind in account container object; do
    [ -e "$dir/run/$kind.pid" ] && die "the $kind server of $dir is running; call stop-servers first."
    ports+=("$(configured_port "$dir/etc/$kind-server.conf")")
  done
  for kind in account container object proxy; do
    spawn "$dir" "$kind" "swift-$kind-server" "$dir/etc/$kind-server.conf" --verbose
  done
  wait_until_ready "$dir" "$(configured_port "$dir/etc/proxy-server.conf")" "${ports[@]}"
}

stop() {
  local dir=$1
  [ -d "$dir/run" ] || die "$dir is not a directory made by 'start'."
  stop_processes "$dir"/run/*.pid
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop)
    [ $# -eq 2 ] || die "usage: $0 stop SWIFT_DIR"
    stop "$2"
    ;;
  stop-servers)
    [ $# -eq 2 ] || die "usage: $0 stop-servers SWIFT_DIR"
    stop_servers "$2"
    ;;
  start-servers)
    [ $# -eq 2 ] || die "usage: $0 start-servers SWIFT_DIR"
    start_servers "$2"
    ;;
  *) die "usage: $0 start | $0 stop SWIFT_DIR | $0 stop-servers SWIFT_DIR | $0 start-servers SWIFT_DIR" ;;
esac
