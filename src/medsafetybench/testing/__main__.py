"""`python -m medsafetybench.testing`: the fake OpenAI server's command line (see `fake_cli.py`)."""

from .fake_cli import main

raise SystemExit(main())
