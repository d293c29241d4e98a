# syntax=docker/dockerfile:1
#
# The secmail worker: a static, pure-Go binary (CGO_ENABLED=0, private keys
# in Go's crypto) on a distroless image without shell or libc, as uid 65532.
#
#   docker build -t ghcr.io/secmail/worker:0.1.0 --build-arg VERSION=0.1.0 .
#
# For private-key operations in OpenSSL's libcrypto see Dockerfile.openssl.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
# No separate `go mod download` layer: it would fetch the test-only modules
# too (kustomize, k8s.io/api); the cache mount keeps what the build needs.
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/worker ./cmd/worker

# static: CA certificates, /etc/passwd with "nonroot", tzdata; nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /worker
USER 65532:65532
# /metrics, /healthz, /readyz
EXPOSE 8080
ENV SECMAIL_METRICS_ADDR=:8080 SECMAIL_LOG_FORMAT=json
ENTRYPOINT ["/worker"]
CMD ["run"]
