# syntax=docker/dockerfile:1
# teams-connector: one process per run (CronJob, `docker run`), state under /data.
#   docker build -t teams-connector .
#   docker run --rm -v tc-state:/data -v $PWD/connector.toml:/etc/teams-connector/connector.toml:ro \
#     -e TEAMS_CONNECTOR_REFRESH_TOKEN_FILE=/run/secrets/refresh-token ... teams-connector run

FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin teams-connector \
    && install -D -m 0755 target/release/teams-connector /out/usr/local/bin/teams-connector \
    && install -d -m 0700 -o 65532 -g 65532 /out/data

# glibc, libgcc and CA certificates, no shell; "nonroot" is uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /
ENV TEAMS_CONNECTOR_CONFIG=/etc/teams-connector/connector.toml \
    TEAMS_CONNECTOR__STATE__DIR=/data
USER 65532:65532
VOLUME ["/data"]
# Exec form, no shell wrapper: the connector is PID 1 and gets SIGTERM itself (it saves
# its cursors and exits 143).
ENTRYPOINT ["/usr/local/bin/teams-connector"]
CMD ["run"]
