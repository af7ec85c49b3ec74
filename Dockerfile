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
WORKDIR /opt/gtsm
ENV AVRO_SCHEMAS_ROOT=/avro_schemas
# DuckDB file of the processor lives on a volume.
VOLUME ["/data"]
EXPOSE 5433
ENTRYPOINT ["gtsm"]
CMD ["--help"]
