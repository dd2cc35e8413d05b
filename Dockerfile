# The Safeguarding Mail Gateway as a container: gateway serve, with state in /var/lib/gateway.
#   docker build -t safeguarding-gateway .
#   docker run -v gateway-data:/var/lib/gateway -v ./gateway.toml:/etc/gateway/gateway.toml:ro \
#              -p 127.0.0.1:10025:10025 -p 127.0.0.1:8025:8025 safeguarding-gateway
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GATEWAY_CONFIG=/etc/gateway/gateway.toml \
    GATEWAY_STORE_DATA_DIR=/var/lib/gateway

RUN groupadd --system gateway \
 && useradd --system --gid gateway --home-dir /var/lib/gateway --shell /usr/sbin/nologin gateway \
 && install -d -o gateway -g gateway -m 0700 /var/lib/gateway \
 && install -d -m 0755 /etc/gateway

WORKDIR /opt/gateway
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install . && rm -rf /opt/gateway/gateway

COPY config/gateway.example.toml /etc/gateway/gateway.toml
COPY allowlists /etc/gateway/allowlists

USER gateway
WORKDIR /var/lib/gateway
VOLUME ["/var/lib/gateway"]
# SMTP filter, review web UI. Inside a container they must listen on 0.0.0.0: set
# [smtp] listen, [smtp] trusted_networks and [web] listen in the mounted gateway.toml.
EXPOSE 10025 8025

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 10025), 3).close()"]

STOPSIGNAL SIGTERM
CMD ["gateway", "serve"]
