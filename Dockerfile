# The operator image; with cairn installed it also serves as a step image for Python ops.
# Build: docker build -t cairn:0.1.0 .   (not built in CI here: no Docker engine on our machines)
FROM python:3.11-slim
WORKDIR /opt/cairn
COPY pyproject.toml README.md ./
COPY runtime ./runtime
COPY operator ./operator
RUN pip install --no-cache-dir ".[operator,s3]" && useradd --uid 65532 --no-create-home cairn
USER 65532
ENTRYPOINT ["python", "-m", "cairn_operator"]
