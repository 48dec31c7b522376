"""Sub-command groups of `datalabel`: one module per noun, each exposing a typer `app` (and optional NAME)."""
