# syntax=docker/dockerfile:1
# Multi-stage build of the one gtsm binary. DuckDB (github.com/duckdb/duckdb-go)
# links a prebuilt static C++ library through cgo, so the builder needs a C/C++
# toolchain (golang:*-bookworm has gcc and g++) and CGO_ENABLED=1; the runtime
# stage is the same Debian release so glibc and libstdc++ match.
FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=1 GOFLAGS=-trimpath
# No separate `go mod download` layer: a bare download fetches DuckDB's
# libraries for all five platforms (~570 MB); `go build` fetches only linux's.
# The cache mounts keep modules and build cache across rebuilds instead.
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=cache,target=/go/pkg/mod \
    go build -ldflags="-s -w" -o /out/gtsm ./cmd/gtsm

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/gtsm /usr/local/bin/gtsm
# The fixtures the one-shot producer publishes (gtsm produce testdata/...), and
# the embedded schemas' files for reference; compose mounts ./avro_schemas
# read-only at /avro_schemas (AVRO_SCHEMAS_ROOT) over the copy.
COPY testdata /opt/gtsm/testdata
COPY avro_schemas /avro_schemas
# Not root: an unprivileged system user owns only /data, where the processor's
# DuckDB file lives (a new named volume takes this directory's owner).
RUN useradd --system --uid 10001 --user-group --home-dir /opt/gtsm --no-create-home gtsm \
 && mkdir -p /data && chown gtsm:gtsm /data
USER gtsm:gtsm
WORKDIR /opt/gtsm
ENV AVRO_SCHEMAS_ROOT=/avro_schemas
VOLUME ["/data"]
# 5433: the SQL endpoint (--sql-addr); 8080: status page, /metrics, /healthz
# (--http-addr).
EXPOSE 5433 8080
# The binary probes the processor's /healthz itself (no curl in the image);
# a container of another subcommand disables it (docker-compose.yml does for
# the one-shot producer).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=4 CMD ["gtsm", "healthcheck"]
ENTRYPOINT ["gtsm"]
CMD ["--help"]
