# One image for every EagleRec service (docker-compose.yml picks the command): both locked environments
# (.venvs/ml, .venvs/airflow) built by the Makefile with uv, and the project's code.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EAGLEREC_HOME=/opt/eaglerec/var

RUN apt-get update \
    && apt-get install -y --no-install-recommends make git curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 eaglerec

WORKDIR /opt/eaglerec
COPY --chown=eaglerec:eaglerec . .
USER eaglerec
RUN make envs && mkdir -p var

# The recommender, MLflow and the Airflow api-server listen here; compose publishes them on the host's 127.0.0.1.
EXPOSE 3000 5000 8080
CMD [".venvs/ml/bin/eaglerec", "--help"]
