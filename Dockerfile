# One image for the ingestion API and every Airflow component (docker-compose.yaml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 50000 fieldpipe \
    && mkdir -p /opt/airflow /data \
    && chown fieldpipe /opt/airflow /data

USER fieldpipe
EXPOSE 5000 8080
CMD ["gunicorn", "api.wsgi:app", "--bind", "0.0.0.0:5000"]
