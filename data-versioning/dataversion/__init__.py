"""Versioning CLI and library: labeled snapshots as DVC dataset versions."""
