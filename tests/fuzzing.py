"""How many examples the property tests draw.

`make test` (and CI) draws every one. `make test-fast` sets TETHER_FUZZ_SCALE=0.2: a fifth of
them, which still finds what a change breaks outright while keeping the lane quick; the full
counts catch the rarer inputs on every full run.
"""

import os

SCALE = float(os.environ.get("TETHER_FUZZ_SCALE", "1"))


def examples(full):
    """`full` examples, scaled for the lane this run is in (never fewer than 10)."""
    return max(10, round(full * SCALE))
