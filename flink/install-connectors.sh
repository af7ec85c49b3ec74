#!/usr/bin/env bash
# Adds the Kafka SQL connector and the avro-confluent format to a Flink
# container: the successor of the original's update_flink_install.sh. Run it in
# every Flink container (jobmanager, taskmanager, sql-gateway, sql-client) before
# Flink starts; docker-compose.yml does. Idempotent.
#
# The jars are fetched from Maven Central once into $CONNECTOR_CACHE (a shared
# volume), checked against Maven's .sha1, then copied into $FLINK_HOME/lib.
# Versions follow the Flink in the container: flink-sql-avro-confluent-registry
# is released with Flink itself (same version); the Kafka connector is released
# separately as <connector>-<flink minor> (override with KAFKA_CONNECTOR_VERSION).
set -euo pipefail

FLINK_HOME=${FLINK_HOME:-/opt/flink}
CACHE=${CONNECTOR_CACHE:-$FLINK_HOME/connectors}
MAVEN=${MAVEN_REPO:-https://repo.maven.apache.org/maven2}

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

fetch() { # artifact version
  local jar="$1-$2.jar" url="$MAVEN/org/apache/flink/$1/$2/$1-$2.jar"
  mkdir -p "$CACHE"
  if [ ! -s "$CACHE/$jar" ]; then
    echo "install-connectors: downloading $url"
    download "$url" "$CACHE/$jar.part"
    download "$url.sha1" "$CACHE/$jar.sha1"
    echo "$(cut -c1-40 "$CACHE/$jar.sha1")  $CACHE/$jar.part" | sha1sum -c --quiet - \
      || { echo "install-connectors: checksum mismatch for $jar" >&2; rm -f "$CACHE/$jar.part"; exit 1; }
    mv "$CACHE/$jar.part" "$CACHE/$jar"
  fi
  if [ ! -e "$FLINK_HOME/lib/$jar" ]; then
    cp "$CACHE/$jar" "$FLINK_HOME/lib/$jar"
    if id flink >/dev/null 2>&1; then chown flink:flink "$FLINK_HOME/lib/$jar" || true; fi
  fi
  echo "install-connectors: $FLINK_HOME/lib/$jar"
}

fetch flink-sql-connector-kafka "$kafka"
fetch flink-sql-avro-confluent-registry "$FLINK_VERSION"
