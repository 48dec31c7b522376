"""Labeling CLI and library: Label Studio projects on Google Cloud Storage."""
