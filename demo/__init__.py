"""The Gradio demo: `python -m demo` serves the registry's production model (see demo/app.py)."""
