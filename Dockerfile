# lbipam: one image for `lbipam controller` and `lbipam speaker` (ExaBGP comes with the Python
# package), and `lbipam demo` (the example objects are package data). deploy/ runs it as uid 65532,
# read-only. Build and push to your registry (README.md, "Deploying on a cluster"):
#   docker build -t REGISTRY/lbipam:0.1.0 . && docker push REGISTRY/lbipam:0.1.0
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY lbipam ./lbipam
COPY bgp ./bgp
# Wheels of lbipam and of every dependency, so the final stage installs without build tools.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels lbipam \
    && useradd --system --uid 65532 --user-group --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin lbipam
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["lbipam"]
CMD ["--help"]
