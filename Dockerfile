# syntax=docker/dockerfile:1
# ICN node image: icnd and icnctl on Debian slim, running as user icn (uid 10001).
#
#   docker build -t icnd:latest --build-arg VERSION=$(git describe --tags --always --dirty) .
#   docker run -d --name icnd -v icn-data:/data -e ICN_KEYSTORE_PASSPHRASE \
#     -p 7777:7777/udp -p 127.0.0.1:9100:9100 -p 127.0.0.1:8080:8080 icnd:latest
#   docker exec -it icnd icnctl --data-dir /data id init   # first run only
#
# See docs/operations.md.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/intercooperative/icn/internal/version.Version=${VERSION}" \
      -o /out/ ./cmd/icnd ./cmd/icnctl

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 icn \
 && useradd --system --uid 10001 --gid icn --home-dir /home/icn --create-home --shell /usr/sbin/nologin icn \
 && mkdir -p /data /home/icn/.local/share \
 && ln -s /data /home/icn/.local/share/icn \
 && chown -R icn:icn /data /home/icn \
 && chmod 0700 /data
COPY --from=build /out/icnd /out/icnctl /usr/local/bin/
COPY scripts/docker-entrypoint.sh /usr/local/bin/icn-entrypoint

# The default data dir of icnd and icnctl (~/.local/share/icn) points at
# /data, so `docker exec icnd icnctl status` works without --data-dir.
USER icn
VOLUME ["/data"]
# QUIC (UDP), Prometheus metrics, health endpoints.
EXPOSE 7777/udp 9100/tcp 8080/tcp
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["icnctl", "--data-dir", "/data", "status"]
# The entrypoint runs `icnd --data-dir /data` by default, runs icnd or icnctl
# when the command names them, and puts icnd in front of bare flags.
ENTRYPOINT ["icn-entrypoint"]
CMD ["icnd", "--data-dir", "/data"]
