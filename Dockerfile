# embedq image (CPU engine for now; the CUDA base image arrives with the CUDA
# backend). Build: docker build -t embedq .
# Not built in CI: the development machines have no Docker engine.
FROM debian:12-slim AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libutf8proc-dev libcjson-dev libopenblas-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY engine engine
COPY worker worker
COPY kernels kernels
COPY tests tests
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j"$(nproc)" --target embedq

FROM debian:12-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libutf8proc2 libcjson1 libopenblas0-pthread libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/embedq /usr/local/bin/embedq
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/embedq"]
CMD ["--help"]
