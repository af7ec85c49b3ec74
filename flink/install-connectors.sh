#!/usr/bin/env bash
# Adds the Kafka SQL connector and the avro-confluent format to a Flink
# container: the successor of the original's update_flink_install.sh. Run it in
# every Flink container (jobmanager, taskmanager, sql-gateway, sql-client) before
# Flink starts; docker-compose.yml does. Idempotent, and safe to run in all of
# them at once over the same cache (flink/install_test.go runs it from four
# processes at once against a local server).
#
# The jars are fetched from Maven Central once into $CONNECTOR_CACHE (a shared
# volume), checked against Maven's .sha1 (or the sha1 pinned in
# $CONNECTOR_SHA1S), then copied into $FLINK_HOME/lib. Versions follow the Flink
# in the container: flink-sql-avro-confluent-registry is released with Flink
# itself (same version); the Kafka connector is released separately as
# <connector>-<flink minor> (override with KAFKA_CONNECTOR_VERSION).
#
# Environment: FLINK_HOME, FLINK_VERSION (default: from lib/flink-dist-*.jar),
# CONNECTOR_CACHE, MAVEN_REPO (the repository's base URL), KAFKA_CONNECTOR_VERSION,
# CONNECTOR_SHA1S ("file.jar=sha1 file.jar=sha1 ...": pinned checksums, used
# instead of downloading the .sha1 next to the jar).
set -euo pipefail

FLINK_HOME=${FLINK_HOME:-/opt/flink}
CACHE=${CONNECTOR_CACHE:-$FLINK_HOME/connectors}
MAVEN=${MAVEN_REPO:-https://repo.maven.apache.org/maven2}
PINNED=${CONNECTOR_SHA1S:-}

if [ -z "${FLINK_VERSION:-}" ]; then
  dist=$(ls "$FLINK_HOME"/lib/flink-dist*.jar 2>/dev/null | head -n1 || true)
  [ -n "$dist" ] || { echo "install-connectors: no flink-dist jar in $FLINK_HOME/lib; set FLINK_VERSION" >&2; exit 1; }
  FLINK_VERSION=$(basename "$dist" .jar | sed -E 's/^flink-dist(_[0-9.]+)?-//')
fi
minor=${FLINK_VERSION%.*}
case "$minor" in
  1.17) kafka=3.1.0-1.17 ;;
  1.18) kafka=3.2.0-1.18 ;;
  1.19) kafka=3.3.0-1.19 ;;
  1.20) kafka=3.3.0-1.20 ;;
  *) kafka= ;;
esac
kafka=${KAFKA_CONNECTOR_VERSION:-$kafka}
[ -n "$kafka" ] || { echo "install-connectors: no known Kafka connector for Flink $FLINK_VERSION; set KAFKA_CONNECTOR_VERSION" >&2; exit 1; }

download() { # url dest
  if command -v curl >/dev/null; then curl -fsSL --retry 3 -o "$2" "$1"; else wget -q -O "$2" "$1"; fi
}

pinned() { # jar -> its pinned sha1, or nothing
  local kv
  for kv in $PINNED; do
    if [ "${kv%%=*}" = "$1" ]; then echo "${kv#*=}"; return; fi
  done
}

# fetch_locked puts a verified $CACHE/$jar in place. The caller holds the
# cache lock, so one container downloads while the others wait and then find
# the jar there; the temporary files are still unique per process and the jar
# appears by rename only after its checksum matched, so a container that dies
# half-way (or a cache without flock) never leaves a truncated jar behind.
fetch_locked() { # jar url
  local jar="$1" url="$2" tmp sum
  [ -s "$CACHE/$jar" ] && return 0
  echo "install-connectors: downloading $url"
  tmp=$(mktemp "$CACHE/.$jar.XXXXXX")
  # shellcheck disable=SC2064 # expand $tmp now: it is local
  trap "rm -f '$tmp' '$tmp.sha1'" EXIT
  download "$url" "$tmp"
  sum=$(pinned "$jar")
  if [ -z "$sum" ]; then
    download "$url.sha1" "$tmp.sha1"
    sum=$(cut -c1-40 "$tmp.sha1")
  fi
  if ! echo "$sum  $tmp" | sha1sum -c --quiet - >/dev/null 2>&1; then
    echo "install-connectors: checksum mismatch for $jar from $url (want sha1 $sum)" >&2
    exit 1
  fi
  echo "install-connectors: $jar sha1 $sum verified"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$CACHE/$jar"
  rm -f "$tmp.sha1"
  trap - EXIT
}

fetch() { # artifact version
  local jar="$1-$2.jar" url="$MAVEN/org/apache/flink/$1/$2/$1-$2.jar"
  mkdir -p "$CACHE"
  if command -v flock >/dev/null; then
    (
      flock 9
      fetch_locked "$jar" "$url"
    ) 9>"$CACHE/.lock"
  else
    fetch_locked "$jar" "$url"
  fi
  if [ ! -e "$FLINK_HOME/lib/$jar" ]; then
    # Same unique-name-then-rename, so a Flink starting in this container
    # never loads a half-copied jar.
    local tmp
    tmp=$(mktemp "$FLINK_HOME/lib/.$jar.XXXXXX")
    cp "$CACHE/$jar" "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$FLINK_HOME/lib/$jar"
    if id flink >/dev/null 2>&1; then chown flink:flink "$FLINK_HOME/lib/$jar" || true; fi
  fi
  echo "install-connectors: $FLINK_HOME/lib/$jar"
}

fetch flink-sql-connector-kafka "$kafka"
fetch flink-sql-avro-confluent-registry "$FLINK_VERSION"
