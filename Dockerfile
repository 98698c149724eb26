# iamra-bootstrap container image, for builders with registry access (docker build / podman build).
#
#   docker build -t iamra-bootstrap:0.1.0 .
#   docker build --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t iamra-bootstrap .
#
# The final image is `scratch` plus one static (musl) binary at /iamra-bootstrap, run as
# 65534:65534 (nobody). It holds no shell, no libc and no CA bundle: AWS endpoints are verified
# against the roots compiled into the binary, Vault against VAULT_CACERT (mount it).
# scripts/build-image.sh builds the same final image from a locally built binary without
# pulling anything (buildah from scratch); keep the two in step.

ARG RUST_VERSION=1.89

# ---- build stage: static musl binary ----------------------------------------------------------
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
ARG TARGET=x86_64-unknown-linux-musl
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools file \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"
WORKDIR /src

# Dependencies first, so that a source change does not download them again.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs \
 && cargo fetch --locked --target "${TARGET}" \
 && rm -rf src

COPY . .
RUN cargo build --release --locked --target "${TARGET}" \
 && install -m 0555 "target/${TARGET}/release/iamra-bootstrap" /iamra-bootstrap \
 && file /iamra-bootstrap \
 && ! file /iamra-bootstrap | grep -Eq 'dynamically linked|interpreter' \
 && /iamra-bootstrap --version

# ---- final stage: scratch + the binary --------------------------------------------------------
FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/iamra-bootstrap/iamra-bootstrap
LABEL org.opencontainers.image.title="iamra-bootstrap" \
      org.opencontainers.image.description="AWS credentials through IAM Roles Anywhere, with HashiCorp Vault or OpenBao as the certificate authority" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /iamra-bootstrap /iamra-bootstrap
# uid 65534 is nobody: ~/.aws/credentials is /home/nobody/.aws/credentials, the path pod specs
# written for the python/aws_signing_helper init container mount.
ENV HOME=/home/nobody
USER 65534:65534
ENTRYPOINT ["/iamra-bootstrap"]
CMD ["init"]
