"""``growth serve``: verify the bundle, then hand the process over to ``bentoml serve``.

    growth serve [--port P] [--workers N] [--host H] [--bundle growthloop:VERSION]

The bundle is opened and every checksum checked first, so a missing or corrupt bundle is a
clear error (exit 2), never a server answering from garbage. The exact tag verified is the
one served (``GROWTH_BUNDLE``), even if a newer bundle is written meanwhile. So are a
``--bundle`` that is not a tag (a folder included: BentoML serves from its store), a host
that is not an IP address (BentoML binds only those) and an address already in use: each
is a ``GrowthError`` before
anything is printed or started, instead of a traceback from BentoML or its process manager.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from features.sources import GrowthError
from serving.bundle import Bundle, open_bundle
from serving.config import REPO_ROOT, ServingConfig, use_bentoml_home
from serving.guard import API_KEY_ENV, BIND_HOST_ENV

SERVICE = "serving.service:GrowthService"


@dataclass(frozen=True)
class ServeCommand:
    bundle: Bundle
    argv: list[str]
    env: dict[str, str]
    url: str
    warning: str | None = None  # what the key setting leaves open, when it matters


def check_bundle_ref(ref: str) -> None:
    """``ref`` names a folder or is a tag BentoML can parse (``name[:version]``); else
    GrowthError (BentoML's own check raises a bare ValueError)."""
    if Path(ref).is_dir():
        return
    from bentoml import Tag
    from bentoml.exceptions import BentoMLException

    try:
        Tag.from_taglike(ref)
    except (ValueError, BentoMLException) as exc:
        raise GrowthError(f"--bundle {ref!r} is neither a bundle folder nor a valid tag "
                          f"NAME[:VERSION] ({exc})") from exc


def check_store_ref(ref: str, what: str) -> None:
    """``ref`` is a tag of the BentoML store, not a folder (``what`` takes only those); else
    GrowthError."""
    if Path(ref).is_dir():
        raise GrowthError(f"--bundle {ref!r} is a folder: {what} takes a bundle from the "
                          "BentoML store, named by its tag (growthloop:VERSION; `bentoml "
                          "models list growthloop` with BENTOML_HOME set lists them)")
    check_bundle_ref(ref)


def check_address(host: str, port: int) -> None:
    """``host`` is an IP address and ``port`` can be bound on it, tried as BentoML's server
    socket will bind it (``SO_REUSEADDR``, so a port in TIME_WAIT counts as free); else
    GrowthError. Something may still take the port before BentoML binds it."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError as exc:
        raise GrowthError(f"--host {host!r} is not an IP address: BentoML binds an IPv4 or "
                          "IPv6 address, e.g. 127.0.0.1 (this machine only) or 0.0.0.0") from exc
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            hint = ("the port is already in use: stop what listens there or pick another "
                    "--port" if exc.errno == errno.EADDRINUSE else exc.strerror)
            raise GrowthError(f"cannot serve on {host}:{port}: {hint}") from exc


def key_warning(host: str, env: Mapping[str, str]) -> str | None:
    """A warning when the scores (``/propensity``, ``/audience``) would be open where that
    is unlikely to be meant: ``GROWTH_API_KEY`` set but blank (no key is then checked), or
    no key while serving on an address other machines reach."""
    key = env.get(API_KEY_ENV)
    if key is not None and not key.strip():
        return (f"warning: {API_KEY_ENV} is set but blank, so no key is checked: "
                "/propensity and /audience are open; set a key or unset it")
    if not key and not ipaddress.ip_address(host).is_loopback:
        return (f"warning: {API_KEY_ENV} is not set and {host} is reachable from other "
                "machines: anyone there can read /propensity and /audience scores")
    return None


def serve_command(cfg: ServingConfig, bundle_ref: str | None = None, host: str | None = None,
                  port: int | None = None, workers: int | None = None) -> ServeCommand:
    """The verified bundle and the ``bentoml serve`` command line that serves it, once the
    address is known to be free."""
    home = use_bentoml_home(cfg)
    ref = bundle_ref or f"{cfg.bundle_name}:latest"
    check_store_ref(ref, "the service")
    host, port = host or cfg.host, port or cfg.port
    check_address(host, port)
    bundle = open_bundle(ref)
    argv = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host,
            "--port", str(port), "--working-dir", str(REPO_ROOT)]
    env = {**os.environ, "BENTOML_HOME": str(home), "GROWTH_BUNDLE": bundle.tag,
           "GROWTH_SERVE_WORKERS": str(workers or cfg.workers), BIND_HOST_ENV: host}
    return ServeCommand(bundle, argv, env, f"http://{host}:{port}", key_warning(host, env))
