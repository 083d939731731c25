# jitgate: multi-stage build, non-root runtime.
#   docker build -t jitgate .
#   docker run -p 8080:8080 -p 8443:8443 -v $PWD/jitgate.yaml:/etc/jitgate/jitgate.yaml:ro \
#     -v $PWD/policies:/etc/jitgate/policies:ro -e JITGATE_CLIENT_SECRET=... jitgate
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY benches benches
RUN cargo build --release --locked --bin jitgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/jitgate --create-home jitgate
COPY --from=build /src/target/release/jitgate /usr/local/bin/jitgate
USER 10001
WORKDIR /var/lib/jitgate
# Proxy (HTTP, HTTPS) and admin (metrics, health) listeners, as set in the config file.
EXPOSE 8080 8443 9090
ENTRYPOINT ["jitgate", "run"]
CMD ["--config", "/etc/jitgate/jitgate.yaml"]
