"""``python -m pipelines.batch ...`` (also the entrypoint of ``ray job submit`` and the cluster manifests)."""

import sys

from pipelines.batch.cli import main

if __name__ == "__main__":
    sys.exit(main())
