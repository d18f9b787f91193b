# coalesce-server on CPU: built on Debian 12, run on Debian 12 slim (docs/install.md).
#
#   docker build -t coalesce-server:0.1.0 .
#   docker run --rm -p 8001:8001 -p 8002:8002 -v "$PWD/models:/models:ro" coalesce-server:0.1.0
#
# The build stage makes the Debian package (`cpack -G DEB`, cmake/install.cmake); the run stage
# installs that package, so the image holds exactly the runtime libraries the package depends on
# (dpkg-shlibdeps) and nothing else. For NVIDIA GPUs see packaging/docker/Dockerfile.cuda.

FROM debian:12 AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config dpkg-dev file \
      libtorch-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev libspdlog-dev prometheus-cpp-dev libconcurrentqueue-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DCOALESCE_BUILD_TESTS=OFF \
    && cmake --build /build -j"$(nproc)" \
    && cd /build && cpack -G DEB

FROM debian:12-slim
ARG DEBIAN_FRONTEND=noninteractive
COPY --from=build /build/coalesce_*.deb /tmp/
RUN apt-get update && apt-get install -y --no-install-recommends /tmp/coalesce_*.deb \
    && rm -rf /var/lib/apt/lists/* /tmp/coalesce_*.deb \
    && useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin coalesce \
    && mkdir -p /models
# Binds every interface and serves the repository mounted at /models.
COPY packaging/docker/server.flags /etc/coalesce/server.flags
USER 65532:65532
EXPOSE 8001 8002
# grpc.health.v1 through the server's own client: SERVING once the models are loaded,
# NOT_SERVING while draining.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["coalesce-client", "--health", "--timeout_ms=2000"]
ENTRYPOINT ["coalesce-server"]
CMD ["--flagfile=/etc/coalesce/server.flags"]
