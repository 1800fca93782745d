"""Who may watch the demo server's streams: a login (Basic or Digest) and TLS (rtsps://), as on a camera.

GstRTSPAuth does both: with a user, every mount needs that login (anonymous requests get 401 and
a challenge of each allowed method); with a certificate, every connection is TLS. Without either
the server stays open and plain, as before. Needs PyGObject, like serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METHODS = ("digest", "basic", "any")
_ROLE, _ANONYMOUS = "viewer", "anonymous"


@dataclass(frozen=True)
class Access:
    """``user``/``password`` (empty = no login), which auth ``method`` the server offers, and a TLS
    certificate and key in PEM files (empty = plain RTSP)."""

    user: str = ""
    password: str = ""
    method: str = "digest"
    tls_cert: str = ""
    tls_key: str = ""

    @property
    def scheme(self) -> str:
        return "rtsps" if self.tls_cert else "rtsp"

    @property
    def enabled(self) -> bool:
        return bool(self.user or self.tls_cert)


def apply(access: Access, server: Any, factories: list[Any]) -> None:
    """Set up `server` (an RTSPServer) and its mounts' `factories` for `access`; nothing if not enabled.

    GLib.Error when the certificate or key cannot be read."""
    if not access.enabled:
        return
    import gi

    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import Gio, GstRtsp, GstRtspServer

    auth = GstRtspServer.RTSPAuth()
    if access.tls_cert:
        auth.set_tls_certificate(Gio.TlsCertificate.new_from_files(access.tls_cert, access.tls_key))
    roles = [_ROLE]
    if access.user:
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", _ROLE)
        methods = {"digest": GstRtsp.RTSPAuthMethod.DIGEST, "basic": GstRtsp.RTSPAuthMethod.BASIC,
                   "any": GstRtsp.RTSPAuthMethod.DIGEST | GstRtsp.RTSPAuthMethod.BASIC}[access.method]
        auth.set_supported_methods(methods)
        if access.method in ("digest", "any"):
            auth.add_digest(access.user, access.password, token)
        if access.method in ("basic", "any"):
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(access.user, access.password), token)
    else:  # TLS alone: anyone who completes the handshake may watch
        anonymous = GstRtspServer.RTSPToken()
        anonymous.set_string("media.factory.role", _ANONYMOUS)
        auth.set_default_token(anonymous)
        roles.append(_ANONYMOUS)
    server.set_auth(auth)
    for factory in factories:
        permissions = GstRtspServer.RTSPPermissions()
        for role in roles:
            permissions.add_permission_for_role(role, "media.factory.access", True)
            permissions.add_permission_for_role(role, "media.factory.construct", True)
        factory.set_permissions(permissions)
