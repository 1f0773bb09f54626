"""Where a listening verb (`serve`, `app`) may bind: the port's range and whether a host is loopback.

Standard library only, so the app's settings can check these without loading the UI.
"""

from __future__ import annotations

import ipaddress

from .errors import ConfigError


def check_port(port: int) -> None:
    """A TCP port, or 0 for any free one; anything else is a ConfigError naming --port."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port is {port}; expected 0..65535 (0: any free port)")


def is_loopback(host: str) -> bool:
    """True when only this machine can reach `host` (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
