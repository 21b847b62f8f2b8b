"""Trained weights shipped with nsep; manifest.json describes each file."""
