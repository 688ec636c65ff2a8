"""Renderers: pure functions from a RunReport to text (or a rich renderable); the CLI decides where it goes."""
