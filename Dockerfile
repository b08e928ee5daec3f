# The autostamp image: one image, one process per container (worker, api or dispatcher).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY autostamp ./autostamp
COPY ledger ./ledger
COPY rules ./rules
COPY streams ./streams
COPY publisher_api ./publisher_api
COPY webhooks ./webhooks
COPY examples ./examples
RUN pip install . && useradd --system --uid 10001 autostamp

USER autostamp
ENTRYPOINT ["autostamp"]
CMD ["--help"]
