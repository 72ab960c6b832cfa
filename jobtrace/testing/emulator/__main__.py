"""``python -m jobtrace.testing.emulator``: same as ``jobtrace emulator``."""

from .cli import main

raise SystemExit(main())
