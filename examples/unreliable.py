"""The seed example (Dagster's `unreliable_job`, ported by changing imports) and its demo.

The job itself lives in `cairn.examples.unreliable`, so that pods can import it as
`cairn.examples.unreliable:unreliable_job`; this file re-exports it and runs the demo::

    python examples/unreliable.py
"""

from __future__ import annotations

import sys

from cairn.examples.unreliable import demo, end, some_random_result, start, unreliable, unreliable_job

__all__ = ["end", "some_random_result", "start", "unreliable", "unreliable_job"]

if __name__ == "__main__":
    sys.exit(demo())
