# wardstream image: one image for worker, gateway and api.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgeos-c1v5 libspatialindex-c6 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY geofence ./geofence
COPY devices ./devices
COPY alerts ./alerts
COPY simulators ./simulators
COPY config ./config
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 wardstream
USER wardstream
EXPOSE 8080 6066 9108 6808 6809 6810 6811 5055
CMD ["wardstream", "--help"]
