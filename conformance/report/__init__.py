"""The HTML report of conformance results (``render.py`` and its Jinja2 templates)."""
