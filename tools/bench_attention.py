"""Time and peak memory of attention, w2vc against transformers: the same as ``python -m w2vc bench``.

The code is chapter 13's (``w2vc/bench.py``, from notebooks/13_fast.ipynb); see its ``--help``.
"""
import sys

from w2vc.bench import main

if __name__ == "__main__":
    sys.exit(main())
