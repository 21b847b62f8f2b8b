"""nsep: recognise and separate musical instruments in audio."""

__version__ = "0.1.0"
