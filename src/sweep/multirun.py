"""`python -m sweep.multirun SWEEP_DIR`: merge a multirun's jobs again (the code is sweep.cli.multirun)."""

import sys

from sweep.cli.multirun import MergeReport, main  # noqa: F401 - MergeReport: Hydra configs that name sweep.multirun

if __name__ == "__main__":
    sys.exit(main())
