# logo with every environment extra, on a CUDA PyTorch base.
# Versions come from pyproject.toml alone: this file installs ".[all]" and pins nothing itself.
# The base image's torch must satisfy pyproject's torch range, so pip keeps the CUDA build.
ARG BASE_IMAGE=pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MUJOCO_GL=egl \
    WANDB_DIR=/workspace/runs

WORKDIR /opt/logo

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
COPY logo/__init__.py logo/__init__.py
# DL3013: the versions are pinned in pyproject.toml, the one source of truth for what is installed.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[all]"

# Then the package itself, without touching the dependencies.
COPY logo logo
RUN pip install --no-cache-dir --no-deps . \
    && useradd --create-home --uid 1000 logo \
    && mkdir -p /workspace/data /workspace/runs \
    && chown -R logo:logo /workspace

COPY --chown=logo:logo configs /workspace/configs
USER 1000:1000
WORKDIR /workspace
VOLUME ["/workspace/data", "/workspace/runs"]

ENTRYPOINT ["logo"]
CMD ["--help"]
