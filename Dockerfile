# syntax=docker/dockerfile:1
#
# oauthbridge in a container: a static binary on distroless.
#
#   docker build -t oauthbridge .
#   docker run -d --name oauthbridge --stop-timeout 40 \
#     -v /srv/oauthbridge/config.yaml:/etc/oauthbridge/config.yaml:ro \
#     -v oauthbridge-state:/var/lib/oauthbridge \
#     -p 127.0.0.1:1143:1143 -p 127.0.0.1:1110:1110 -p 127.0.0.1:1587:1587 -p 127.0.0.1:8025:8025 \
#     oauthbridge
#   docker run -it --rm -v /srv/oauthbridge/config.yaml:/etc/oauthbridge/config.yaml:ro \
#     -v oauthbridge-state:/var/lib/oauthbridge oauthbridge authorize alice@gmail.com --no-browser
#
# Inside the container the listeners must bind 0.0.0.0 (with an allow list
# covering the Docker network, e.g. 172.16.0.0/12) and http.listen
# 0.0.0.0:8025 with http.allow_remote: true; publish the ports on the
# host's loopback as above, or use --network host with the loopback
# defaults.

# ---- build: a static, reproducible binary --------------------------------
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
ARG TARGETOS TARGETARCH
ARG VERSION=dev
WORKDIR /src
# Modules first, so source edits do not re-download them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO_ENABLED=0: no libc, so the binary runs on distroless/static (and
# the pure-Go resolver reads /etc/resolv.conf and /etc/hosts). -trimpath
# drops build paths; -s -w strips symbols. main.version is set if the
# command defines it (the linker ignores -X for a missing variable).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/oauthbridge ./cmd/oauthbridge
# The state directory, owned by the runtime user (65532, distroless's
# "nonroot") with mode 0700: a new named volume copies this ownership.
RUN install -d -m 0700 -o 65532 -g 65532 /out/state

# ---- run ----------------------------------------------------------------
# distroless/static rather than scratch: it ships the CA bundle the
# upstream and token-endpoint TLS verification needs, tzdata, and an
# /etc/passwd with the non-root user 65532, all kept current by its
# maintainers; and like scratch it has no shell or package manager for an
# intruder to use. The :nonroot tag runs as that user by default.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/oauthbridge /usr/local/bin/oauthbridge
COPY --from=build --chown=65532:65532 /out/state /var/lib/oauthbridge
# config.yaml is mounted here (read-only is fine: the daemon never writes it).
ENV OAUTHBRIDGE_CONFIG=/etc/oauthbridge/config.yaml \
    STATE_DIRECTORY=/var/lib/oauthbridge
# Tokens (encrypted) and the master key live here: keep it on a volume.
VOLUME /var/lib/oauthbridge
USER 65532:65532
# imap, pop3, smtp (submission) and the admin endpoint (/healthz,
# /metrics, status page).
EXPOSE 1143 1110 1587 8025
# No curl in distroless: the binary probes its own /healthz (needs
# http.listen to cover 127.0.0.1:8025 inside the container).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/oauthbridge", "health", "-url", "http://127.0.0.1:8025/healthz"]
# SIGTERM drains sessions for shutdown_grace (30s): run with
# --stop-timeout 40 so Docker waits for it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/oauthbridge"]
CMD ["serve"]
