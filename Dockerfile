# Steward container image: a release build in the Rust image, then only the binary on a slim
# Debian runtime, run as an unprivileged user with its state in a volume.
#
#   docker build -t steward .
#   docker run --rm -p 127.0.0.1:8080:8080 -e STEWARD_ISSUER=http://127.0.0.1:8080 \
#     -v steward-data:/var/lib/steward steward
#
# See docs/operations.md ("Container") for production settings. A cold build compiles the whole
# dependency tree: about 18 minutes on 2 cores.

# The builder's Debian release matches the runtime's, so the binary finds the glibc it was
# linked against.
FROM rust:1.95-trixie AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p steward \
 && install -m 0755 target/release/steward /usr/local/bin/steward

FROM debian:trixie-slim
# Outbound fetches trust the roots compiled into the binary (webpki-roots) plus
# egress.extra_root_certs, so the image needs no CA bundle. The state directory is created here,
# owned by the service user, so a named volume mounted on it starts with that owner.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/steward --shell /usr/sbin/nologin steward \
 && install -d -m 0700 -o steward -g steward /var/lib/steward
COPY --from=build /usr/local/bin/steward /usr/local/bin/steward
USER steward:steward
WORKDIR /var/lib/steward
# Listen on every interface of the container; the port is published by the runtime. The issuer
# cannot be derived from 0.0.0.0: give STEWARD_ISSUER (the public https URL) at run time.
ENV STEWARD_LISTEN=0.0.0.0:8080 \
    STEWARD_DATABASE__URL=sqlite:///var/lib/steward/steward.db \
    STEWARD_KEYS__ENCRYPTION_KEY_FILE=/var/lib/steward/kek
VOLUME ["/var/lib/steward"]
EXPOSE 8080
# SIGTERM (Docker's default stop signal) drains in-flight requests for http.shutdown_grace_ms
# (10 s); give `docker stop` at least that long (its default is 10 s: use --time 15).
ENTRYPOINT ["/usr/local/bin/steward"]
CMD ["serve"]
