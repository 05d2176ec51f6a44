"""The real images, built with buildah into the cairn cache (layers cached: quick when nothing changed).

The first run on a machine makes the base with debootstrap and installs the dependencies from PyPI
(about two minutes); later runs reuse every layer. No control plane is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from cairn_dev.builds import images
from cairn_dev.builds.images import ImageBuilder

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the image build runs debootstrap and buildah as root")

ROOT = Path(__file__).resolve().parents[2]
PROBE = "localhost/cairn-step-probe:test"


@pytest.fixture(scope="session")
def builder() -> ImageBuilder:
    b = ImageBuilder(say=print)
    assert b.build_all() == [images.PAUSE_IMAGE, images.OPERATOR_IMAGE, images.STEP_IMAGE]
    return b


def _config(builder: ImageBuilder, image: str) -> dict[str, object]:
    config: dict[str, object] = builder.inspect(image)["OCIv1"]["config"]
    return config


def test_operator_and_step_run_as_65532(builder: ImageBuilder) -> None:
    operator = _config(builder, images.OPERATOR_IMAGE)
    assert operator["User"] == "65532"
    assert operator["Entrypoint"] == ["python", "-m", "cairn_operator"]
    step = _config(builder, images.STEP_IMAGE)
    assert step["User"] == "65532"
    assert not step.get("Entrypoint") and step["Cmd"] == ["python"]
    assert step["WorkingDir"] == "/workspace"


def test_step_image_has_cairn_boto3_and_the_examples(builder: ImageBuilder) -> None:
    code = (
        "import os, cairn, boto3, cairn.examples.unreliable, cairn.step; "
        "open('probe', 'w').write('x'); print(os.getuid(), os.getcwd(), cairn.__version__)"
    )
    res = builder.run(images.STEP_IMAGE, ["python", "-c", code])
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["65532", "/workspace", images.VERSION]


def test_operator_image_has_kopf_and_the_operator(builder: ImageBuilder) -> None:
    res = builder.run(images.OPERATOR_IMAGE, ["python", "-c", "import kopf, cairn_operator, cairn.s3io; print('ok')"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_pause_image(builder: ImageBuilder) -> None:
    pause = _config(builder, images.PAUSE_IMAGE)
    assert pause["User"] == "65535:65535" and pause["Entrypoint"] == ["/pause"]
    res = builder.run(images.PAUSE_IMAGE, ["/pause", "-v"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "cairn-pause 3.10"


def test_export_writes_a_docker_archive_with_the_full_name(builder: ImageBuilder, tmp_path: Path) -> None:
    path = builder.export(images.PAUSE_IMAGE, tmp_path / "pause.tar")
    with tarfile.open(path) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest = json.load(member)
    assert manifest[0]["RepoTags"] == [images.PAUSE_IMAGE]


def test_a_code_change_rebuilds_only_the_top_layer(builder: ImageBuilder, tmp_path: Path) -> None:
    """The step image built from a copy of the tree, once as is and once with a file under runtime/cairn changed."""
    src = tmp_path / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("pyproject.toml", "README.md", "Dockerfile", ".dockerignore"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("runtime", "operator"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    probe = ImageBuilder(context=src, say=print)
    try:
        probe.build_target("step", PROBE)
        before = probe.layers(PROBE)
        with (src / "runtime" / "cairn" / "examples" / "__init__.py").open("a") as f:
            f.write("# a code change (tests/integration/test_images.py)\n")
        probe.build_target("step", PROBE)
        after = probe.layers(PROBE)
        log = probe.log_path(PROBE).read_text().splitlines()
    finally:
        subprocess.run(probe.buildah("rmi", PROBE), capture_output=True, check=False)
    assert len(after) == len(before)
    assert after[:-1] == before[:-1], "only the top layer may change"
    assert after[-1] != before[-1]

    def next_line(step: str) -> str:
        (i,) = [n for n, line in enumerate(log) if line.endswith(step)]
        return log[i + 1]

    assert next_line(
        "RUN pip install -r /tmp/cairn/step.txt && rm -rf /tmp/cairn && install -d -o 65532 -g 65532 /workspace"
    ).startswith("--> Using cache")
    assert not next_line("COPY --from=code /install/ /").startswith("--> Using cache")
