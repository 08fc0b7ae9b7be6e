"""`python -m trace_stream` is the `trace-stream` command."""

import sys

from trace_stream.cli import main

sys.exit(main())
