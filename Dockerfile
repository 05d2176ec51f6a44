# Cairn's two images. Both run as the numeric non-root user 65532, Python in the venv /opt/cairn
# (first on PATH, so `python` resolves on any base).
#
#   operator  `python -m cairn_operator`, cairn[operator,s3]
#             docker build --target operator -t localhost/cairn-operator:0.1.0 .
#   step      what step pods run: cairn[s3] with cairn.examples, WORKDIR /workspace (writable by 65532),
#             no ENTRYPOINT, CMD python (the operator sets the command `python -m cairn.step run ...`)
#             docker build --target step -t localhost/cairn-step:0.1.0 .
#             It is the last stage, so a plain `docker build .` gives the step image: the one users
#             extend (FROM localhost/cairn-step:0.1.0, their code in /workspace).
#
# BASE: any Debian-like image with python3 >= 3.11, its venv module and useradd. Without a Docker
# engine, `cairn dev image build` makes localhost/cairn-base:bookworm with debootstrap and builds this
# file with buildah (devtools/cairn_dev/builds/images.py, the local cluster builder, which no image contains).
#
# Layer caching: dependencies are installed from pyproject.toml alone; the code is built in the
# `code` stage and lands in each image as one top layer (COPY --from=code), so a code change
# rebuilds only that layer.
ARG BASE=python:3.11-slim

FROM ${BASE} AS python
ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/cairn \
    PATH=/opt/cairn/bin:$PATH
RUN groupadd --gid 65532 cairn \
    && useradd --uid 65532 --gid 65532 --home-dir /home/cairn --create-home --shell /usr/sbin/nologin cairn \
    && python3 -m venv /opt/cairn
# pyproject.toml -> requirements files: `build` is [build-system].requires, anything else is
# [project].dependencies plus the named extras (the same as cairn_dev.builds.images.requirements, which
# tests/unit/test_images.py checks against this command).
COPY pyproject.toml /tmp/cairn/
RUN cd /tmp/cairn && python3 -c "import sys, tomllib; \
    t = tomllib.load(open('pyproject.toml', 'rb')); p = t['project']; o = p.get('optional-dependencies', {}); \
    req = lambda g: t['build-system']['requires'] if g == 'build' else p['dependencies'] + [r for e in g.split(',') if e for r in o[e]]; \
    [open(f, 'w').write(''.join(r + '\n' for r in dict.fromkeys(req(g)))) for g, f in (a.split(':') for a in sys.argv[1:])]" \
    build:build.txt operator,s3:operator.txt s3:step.txt

# The cairn package installed under /install (in no image itself): build tools first, then the code.
FROM python AS code
RUN pip install -r /tmp/cairn/build.txt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runtime ./runtime
COPY operator ./operator
RUN pip install --no-deps --no-build-isolation --root /install . && rm -rf build

FROM python AS operator
RUN pip install -r /tmp/cairn/operator.txt && rm -rf /tmp/cairn
COPY --from=code /install/ /
WORKDIR /home/cairn
USER 65532
ENTRYPOINT ["python", "-m", "cairn_operator"]

FROM python AS step
RUN pip install -r /tmp/cairn/step.txt && rm -rf /tmp/cairn && install -d -o 65532 -g 65532 /workspace
COPY --from=code /install/ /
WORKDIR /workspace
USER 65532
CMD ["python"]
