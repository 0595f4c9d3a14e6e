# pdchaos image: build in the Rust image, run from distroless as a non-root user.
#   docker build -t pdchaos .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pdchaos \
 && strip target/release/pdchaos

# cc-debian12 carries glibc and libgcc (the binary links both); nothing else, no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/pdchaos /usr/local/bin/pdchaos
COPY --from=build /src/features /usr/share/pdchaos/features
WORKDIR /usr/share/pdchaos
# 65532 is distroless's nonroot; the manifests also run it as 10001, which needs nothing on disk.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/pdchaos"]
CMD ["--help"]
