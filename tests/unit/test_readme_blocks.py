"""The README's runnable blocks, without running them: the extractor's rules as a table, and the README's
own blocks found in order, valid shell, `cairn` used only once it is on PATH, a teardown for the cluster."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.readme_blocks import README, Block, blocks, runnable, script

DOC = """# Title

```sh
make demo
```

Text with `inline` code.

```text
cairn run JOB [--config FILE]
```

````sh
echo "a ``` inside a longer fence"
````

  ```python
  print(1)
  ```

~~~sh teardown
make down
~~~

```sh
echo last
"""


def test_blocks_are_found_in_order_with_their_line_and_info() -> None:
    assert blocks(DOC) == [
        Block(3, ("sh",), "make demo\n"),
        Block(9, ("text",), "cairn run JOB [--config FILE]\n"),
        Block(13, ("sh",), 'echo "a ``` inside a longer fence"\n'),
        Block(17, ("python",), "  print(1)\n"),
        Block(21, ("sh", "teardown"), "make down\n"),
        Block(25, ("sh",), "echo last\n\n"),  # unclosed: to the end of the document
    ]


@pytest.mark.parametrize(
    ("info", "is_runnable", "is_teardown"),
    [
        (("sh",), True, False),
        (("sh", "teardown"), True, True),
        (("text",), False, False),
        (("console",), False, False),
        (("bash",), False, False),  # only `sh` blocks run: one convention, not two
        (("text", "teardown"), False, False),
        ((), False, False),
    ],
)
def test_which_blocks_run(info: tuple[str, ...], is_runnable: bool, is_teardown: bool) -> None:
    block = Block(1, info, "true\n")
    assert (block.runnable, block.teardown) == (is_runnable, is_teardown)


def test_teardown_blocks_are_kept_apart_and_the_script_says_where_each_block_starts() -> None:
    body, teardown = runnable(DOC)
    assert [b.line for b in body] == [3, 13, 25] and [b.line for b in teardown] == [21]
    text = script(body)
    assert text.index(">>> README.md:3") < text.index("make demo") < text.index(">>> README.md:13")


README_TEXT = README.read_text()
BODY, TEARDOWN = runnable(README_TEXT)


def test_the_readme_has_runnable_blocks_and_one_teardown_for_its_cluster() -> None:
    assert len(BODY) >= 4 and len(TEARDOWN) == 1
    body = "".join(b.text for b in BODY)
    assert "make demo" in BODY[0].text  # the first thing a new user types
    ups = re.findall(r"make up(?:-containerd)?\b|cairn dev up\b", body)
    assert ups, "the quickstart starts a cluster"
    assert re.search(r"make down\b|cairn dev down\b", TEARDOWN[0].text), "and the teardown stops it"


def test_cairn_is_called_only_after_it_is_put_on_path() -> None:
    lines = [line.split("#")[0] for b in BODY for line in b.text.splitlines()]
    activated = next(i for i, line in enumerate(lines) if re.search(r"(^|\s)\. \.venv/bin/activate", line))
    early = [line for line in lines[:activated] if re.search(r"(^|[\s;&|(])cairn\s", line)]
    assert early == [], "cairn is not on PATH before `. .venv/bin/activate`"


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("part", ["body", "teardown"])
def test_the_readme_blocks_are_valid_shell(part: str) -> None:
    text = script(BODY if part == "body" else TEARDOWN)
    checked = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
