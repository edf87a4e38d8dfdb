# PetSeg serving image.
#
#   docker build -t petseg:gpu .                          # default: GPU-capable TensorFlow (CUDA 12 wheels)
#   docker build -t petseg:cpu --build-arg TF_VARIANT=cpu . # CPU-only TensorFlow, ~4x smaller
#   ... --build-arg JEMALLOC=1                            # Debian's libjemalloc2 preloaded (docs/runtime.md)
#
# Inference runtime (PETSEG_BACKEND=auto, docs/runtime.md): the CPU image carries OpenVINO (the `cpu`
# extra), so it serves the SavedModel compiled by OpenVINO; the GPU image has no OpenVINO and serves
# with TensorFlow on the GPU.
#
# Base: the official slim Python image. TensorFlow's CUDA 12 / cuDNN libraries come as pip wheels
# (`tensorflow[and-cuda]`), so the image needs only an NVIDIA driver on the host (nvidia-container-toolkit),
# not a CUDA base image, and the CPU variant is the same image minus those wheels.
# Two stages: the builder creates a virtual environment with only the serving dependencies; the final
# stage copies that venv, the service code (inside the venv) and the released model. No compiler, no pip
# cache, no training libraries (tensorflow-datasets, matplotlib) and no training package end up in it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG TF_VARIANT=gpu
LABEL org.petseg.stage=builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN case "${TF_VARIANT}" in cpu|gpu) ;; *) echo "TF_VARIANT must be cpu or gpu, got '${TF_VARIANT}'" >&2; exit 2;; esac \
 && python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (their layer is reused while only the code changes): install the project's serving
# extras from pyproject.toml against an empty package, then the real code without touching dependencies.
COPY pyproject.toml ./
RUN mkdir -p app && touch app/__init__.py README.md \
 && pip install --upgrade pip \
 && pip install ".[serve,${TF_VARIANT}]" \
 && pip uninstall -y petseg
COPY README.md ./
COPY app/ app/
COPY petseg_contract/ petseg_contract/
RUN pip install --no-deps . \
 && rm -f /opt/venv/bin/petseg-train \
 && python -c "import app, petseg_contract, fastapi, uvicorn, tensorflow" \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +


FROM ${PYTHON_IMAGE}
ARG TF_VARIANT=gpu
# Empty (default): glibc's allocator, tuned by `petseg serve`; 1: jemalloc preloaded. Measured: no
# better than tuned glibc (docs/runtime.md). With it, TBB_ENABLE_SANITIZERS=1 is required: oneTBB loads
# its topology library with RTLD_DEEPBIND, so OpenVINO's compilation frees jemalloc's memory with
# glibc's free and aborts ("munmap_chunk(): invalid pointer", oneTBB issue 1636) without it.
ARG JEMALLOC=
LABEL org.opencontainers.image.title="petseg" \
      org.opencontainers.image.description="Pet-photo segmentation HTTP service (TensorFlow SavedModel + FastAPI)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.petseg.tf-variant="${TF_VARIANT}"

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it and mounted volumes can be chowned.
RUN groupadd --gid 10001 petseg \
 && useradd --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin petseg \
 && if [ -n "${JEMALLOC}" ]; then \
      apt-get update -qq && apt-get install -y -qq --no-install-recommends libjemalloc2 \
      && rm -rf /var/lib/apt/lists/* \
      && ln -s "$(find /usr/lib -name libjemalloc.so.2 | head -n1)" /usr/local/lib/petseg-malloc.so; \
    fi

COPY --from=builder /opt/venv /opt/venv
# The released model, baked in. Mount another model directory and point PETSEG_MODEL_DIR at it to
# serve that one instead (a base dir with numeric versions: the highest wins).
COPY models/ /opt/petseg/models/

# Everything the service needs is read-only; TensorFlow/Keras scratch goes to /tmp (a tmpfs when the
# root filesystem is mounted read-only).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    KERAS_HOME=/tmp/.keras \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PETSEG_HOST=0.0.0.0 \
    PETSEG_PORT=8000 \
    PETSEG_MODEL_DIR=/opt/petseg/models/pet-unet \
    PETSEG_TF_INTRA_OP_THREADS=0 \
    PETSEG_TF_INTER_OP_THREADS=2 \
    PETSEG_GPU_MEMORY_GROWTH=true \
    PETSEG_BACKEND=auto \
    LD_PRELOAD=${JEMALLOC:+/usr/local/lib/petseg-malloc.so} \
    TBB_ENABLE_SANITIZERS=${JEMALLOC:+1}

USER 10001:10001
WORKDIR /tmp
EXPOSE 8000

# Healthy only once the model is loaded and warmed up (/readyz); python's stdlib, no curl in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PETSEG_PORT', '8000'), timeout=4)"]

# Exec form: the server is PID 1 and gets SIGTERM itself; uvicorn then stops accepting connections and
# lets in-flight requests finish before it exits.
ENTRYPOINT ["petseg"]
CMD ["serve"]
