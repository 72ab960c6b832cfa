"""``python -m jobtrace``: the ``jobtrace`` command."""

import sys

from .cli import main

sys.exit(main())
