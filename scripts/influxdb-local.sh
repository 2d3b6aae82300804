#!/usr/bin/env bash
# Starts a throw-away InfluxDB 1.x (Debian's influxdb package, installed if
# missing) on 127.0.0.1:8086 with its data in ./influxdb-demo, and creates
# the database "pingmachine". Stop it with Ctrl-C. For trying the
# line-protocol output with the demo (see docs/LINE-PROTOCOL.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --test
dir="${1:-influxdb-demo}"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cat > "$dir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:8088"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:8086"
  log-enabled = false
[[udp]]
  enabled = true
  bind-address = "127.0.0.1:8089"
  database = "pingmachine"
  precision = "n"
[monitor]
  store-enabled = false
CONF
influxd -config "$dir/influxdb.conf" &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 50); do
  if curl -fsS -o /dev/null http://127.0.0.1:8086/ping 2>/dev/null; then break; fi
  sleep 0.2
done
curl -fsS -XPOST http://127.0.0.1:8086/query --data-urlencode 'q=CREATE DATABASE pingmachine' >/dev/null
echo "influxdb: HTTP on 127.0.0.1:8086, UDP on 127.0.0.1:8089, database pingmachine (Ctrl-C to stop)" >&2
wait $pid
