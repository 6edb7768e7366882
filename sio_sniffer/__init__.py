"""sio-sniffer: a transparent Socket.IO proxy that finds where the event flow breaks."""

__version__ = "0.1.0"
