# syntax=docker/dockerfile:1
# Build stage: compile the release binary with the pinned toolchain.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY rust-toolchain.toml Cargo.toml Cargo.lock ./
COPY actors actors
COPY src src
COPY migrations migrations
COPY tests tests
RUN cargo build --release --locked --bin loan-tracker

# Runtime stage: a small image with only the binary, running as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app loan-tracker \
 && mkdir -p /app/data && chown loan-tracker /app/data
COPY --from=build /src/target/release/loan-tracker /usr/local/bin/loan-tracker
USER loan-tracker
WORKDIR /app
ENV HTTP_ADDR=0.0.0.0:8080 DATA_DIR=/app/data
EXPOSE 8080
ENTRYPOINT ["loan-tracker"]
CMD ["serve"]
