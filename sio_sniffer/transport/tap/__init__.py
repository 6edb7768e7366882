"""The passive tap: sans-IO parsers of the copies (HTTP/1.1, RFC 6455) that never touch traffic."""

from sio_sniffer.transport.tap.connection import ConnectionTap

__all__ = ["ConnectionTap"]
