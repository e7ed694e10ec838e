# syntax=docker/dockerfile:1
# The embedq worker image: the CUDA backend for sm_80/86/89/90 (A100, A10,
# L4, H100) plus the CPU engine, Kafka and Redis Streams sources.
#
#   docker build -t embedq .                                  # runtime (default)
#   docker build --target baked --build-arg MODEL_DIR=models/Qwen3-Embedding-0.6B \
#                -t embedq:0.6b .                             # a model baked in
#   docker build --build-arg EMBEDQ_CUDA=OFF -t embedq:cpu .  # CPU engine only
#
# EMBEDQ_CUDA=ON (the default) needs NVIDIA's apt repository at build time;
# EMBEDQ_CUDA=OFF builds without it (what CI builds with buildah, where that
# repository is unreachable: tests/docker/image_test.py, docs/docker.md).
#
# Every build step is a script CI also runs (docs/docker.md): the package
# lists are .ci/packages, the build is .ci/build (CI builds the same
# configuration: Release, CUDA on, the same architectures; the image leaves
# the tests out). Only the CUDA
# install (docker/install-cuda.sh) is image-only: CI uses /usr/local/cuda.
#
# Runtime: the model at /model (mount it read-only, or bake it), the worker
# configured by EMBEDQ_* variables (embedq worker --help), /healthz /readyz
# /metrics on port 9090. tini is PID 1 and forwards SIGTERM, so the worker
# drains (--drain-timeout) before the pod's grace period ends.

ARG DEBIAN_IMAGE=debian:12-slim
ARG CUDA_VERSION=13.0
ARG EMBEDQ_CUDA=ON
# The image the baked target adds the model to: this file's runtime-base
# stage, or an embedq image already built (--build-arg BAKED_FROM=embedq:cpu),
# so a model is baked in without building embedq again.
ARG BAKED_FROM=runtime-base

# ---- build ------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS build
ARG CUDA_VERSION
ARG EMBEDQ_CUDA
COPY .ci/packages /tmp/ci/packages
COPY docker/install-cuda.sh /tmp/ci/install-cuda.sh
RUN case "${EMBEDQ_CUDA}" in ON|OFF) ;; \
      *) echo "EMBEDQ_CUDA must be ON or OFF (got '${EMBEDQ_CUDA}')" >&2; exit 2 ;; esac \
 && bash /tmp/ci/packages install build \
 && if [ "${EMBEDQ_CUDA}" = ON ]; then bash /tmp/ci/install-cuda.sh "${CUDA_VERSION}"; fi
WORKDIR /src
COPY CMakeLists.txt ./
COPY .ci .ci
COPY engine engine
COPY kernels kernels
COPY worker worker
COPY loadtest loadtest
COPY schemas schemas
# The CUDA libraries the binary loads are copied next to it (the runtime
# stage takes them from here instead of the multi-GB toolkit packages):
# those ldd lists, and libcublasLt, which embedq dlopens on first use
# (engine/cublaslt_dl.c) so ldd does not show it. The runtime stage puts
# them on the loader's path (ld.so.conf.d), where dlopen finds them too.
RUN EMBEDQ_CUDA="${EMBEDQ_CUDA}" EMBEDQ_TESTS=OFF bash .ci/build /build --target embedq \
 && mkdir -p /out/lib \
 && cp /build/embedq /out/embedq \
 && for l in $(ldd /out/embedq | awk '$3 ~ /^\/usr\/local\/cuda/ {print $3}'); do cp -L "$l" /out/lib/; done \
 && if [ "${EMBEDQ_CUDA}" = ON ]; then \
      for l in /usr/local/cuda/lib64/libcublasLt.so.[0-9]* /usr/local/cuda/lib/libcublasLt.so.[0-9]*; do \
        [ -e "$l" ] && cp -L "$l" /out/lib/; \
      done; \
      ls /out/lib/libcublasLt.so.* >/dev/null; \
    fi

# ---- runtime ------------------------------------------------------------------
# What the runtime packages ship that the worker never loads is removed:
# the reference BLAS/LAPACK of libopenblas0-pthread (embedq links
# libopenblas.so.0 itself) and tini-static (tests/docker/image_test.py checks
# the rest against ldd).
FROM ${DEBIAN_IMAGE} AS runtime-base
COPY .ci/packages /tmp/ci/packages
RUN bash /tmp/ci/packages install runtime \
 && update-alternatives --remove-all libblas.so.3-x86_64-linux-gnu \
 && update-alternatives --remove-all liblapack.so.3-x86_64-linux-gnu \
 && rm -f /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 \
          /usr/lib/x86_64-linux-gnu/openblas-pthread/liblapack.so.3 /usr/bin/tini-static \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log /tmp/ci \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin embedq
COPY --from=build /out/lib/ /usr/local/lib/embedq/
COPY --from=build /out/embedq /usr/local/bin/embedq
RUN echo /usr/local/lib/embedq > /etc/ld.so.conf.d/embedq.conf && ldconfig \
 && /usr/local/bin/embedq --help >/dev/null
ENV EMBEDQ_MODEL=/model \
    EMBEDQ_METRICS_PORT=9090 \
    OMP_WAIT_POLICY=PASSIVE \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
EXPOSE 9090
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/embedq", "worker"]

# A model baked into the image (--target baked --build-arg MODEL_DIR=...,
# a Hugging Face checkpoint directory inside the build context).
FROM ${BAKED_FROM} AS baked
ARG MODEL_DIR=docker/no-model
COPY --chown=10001:10001 ${MODEL_DIR} /model

# The default target: the model is mounted at /model.
FROM runtime-base AS runtime
