"""``python -m gpusim`` is the ``gpusim`` command."""
import sys

from gpusim.cli import main

sys.exit(main())
