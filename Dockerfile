# The Safeguarding Mail Gateway as a container: gateway serve, with state in /var/lib/gateway.
#   docker build -t safeguarding-gateway .         (podman: add --format docker, for HEALTHCHECK)
#   docker run -v gateway-data:/var/lib/gateway -v ./gateway.toml:/etc/gateway/gateway.toml:ro \
#              -e GATEWAY_STORE_KEY -p 127.0.0.1:10025:10025 -p 127.0.0.1:8025:8025 \
#              safeguarding-gateway
# Without network access: put the project's wheels and its dependencies' in wheels/
# (`pip wheel -w wheels . 'setuptools>=77'`) and add --build-arg PIP_INSTALL_OPTIONS=--no-index.
# Both stages run on the same official base; the gateway lives in a venv under /opt, so the
# image needs only the base's python3 (/usr/local/bin here, /usr/bin on a Debian base).
FROM python:3.11-slim-bookworm AS build

ARG PIP_INSTALL_OPTIONS=""
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY wheels ./wheels
COPY pyproject.toml README.md ./
COPY gateway ./gateway
# wheels/ is searched first and may be empty: then pip takes everything from the index.
RUN python3 -m venv /opt/gateway \
 && /opt/gateway/bin/pip install $PIP_INSTALL_OPTIONS --find-links ./wheels .

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/gateway/bin:$PATH \
    GATEWAY_CONFIG=/etc/gateway/gateway.toml \
    GATEWAY_STORE_DATA_DIR=/var/lib/gateway

# A fixed uid and gid, so that a bind-mounted state folder can be given to them (chown 10025).
RUN groupadd --system --gid 10025 gateway \
 && useradd --system --uid 10025 --gid gateway --home-dir /var/lib/gateway --shell /usr/sbin/nologin gateway \
 && install -d -o gateway -g gateway -m 0700 /var/lib/gateway \
 && install -d -m 0755 /etc/gateway

COPY --from=build /opt/gateway /opt/gateway
COPY deploy/healthcheck.py /opt/gateway/healthcheck.py
COPY config/gateway.example.toml /etc/gateway/gateway.toml
COPY allowlists /etc/gateway/allowlists

USER gateway
WORKDIR /var/lib/gateway
VOLUME ["/var/lib/gateway"]
# SMTP filter, review web UI. Inside a container they must listen on 0.0.0.0: set
# [smtp] listen, [smtp] trusted_networks and [web] listen in the mounted gateway.toml.
EXPOSE 10025 8025

# Healthy when the SMTP port of [smtp] listen greets and answers NOOP (deploy/healthcheck.py).
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["/opt/gateway/bin/python", "/opt/gateway/healthcheck.py"]

STOPSIGNAL SIGTERM
CMD ["gateway", "serve"]
