"""Placeholder until the demo lands: `python -m demo` says what works today."""

import sys

print("The Gradio demo is not built yet; `python -m fer --help` lists what works now.", file=sys.stderr)
sys.exit(1)
