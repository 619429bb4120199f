"""How the controller reaches one instance's forwarded guest ports.

A guest's user-mode forwards listen on 127.0.0.1 of *its* host. For an instance on this
machine (or on a host that shares this machine's loopback) a `Route` is direct: 127.0.0.1 and
the recorded host port. For an instance on another host it goes through that host's SSH
connection (controller/virt/tunnel.py): `port()` gives a forward listening on 127.0.0.1 here
(one per host and port, reused), `connector()` a fresh channel per connect for GuestSSH. A host
that cannot be reached raises TunnelError (a HypervisorError naming it) within the tunnel's bound.
"""
from __future__ import annotations

import getpass
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import paramiko

from controller.core.errors import HypervisorError, ModelError
from controller.model.instance import SSH_PORT
from controller.virt.tunnel import LOOPBACK, SshEndpoint, Tunnels

_LOCAL_NAMES = (None, "", "127.0.0.1", "::1", "localhost")  # hosts sharing this machine's 127.0.0.1


@dataclass(frozen=True)
class Route:
    """`ports`: guest port -> host port on the instance's host; `endpoint`/`tunnels`: the SSH
    way to that host (None: the ports are on this machine's 127.0.0.1)."""

    ports: Mapping[int, int]
    endpoint: SshEndpoint | None = None
    tunnels: Tunnels | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if (self.endpoint is None) != (self.tunnels is None):
            raise ValueError("a tunnelled route needs both an endpoint and its tunnels")

    @property
    def remote(self) -> bool:
        return self.endpoint is not None

    @property
    def where(self) -> str:
        """The host the ports listen on, for messages."""
        return str(self.endpoint) if self.endpoint is not None else "this machine"

    def host_port(self, guest_port: int) -> int:
        """The recorded forward of `guest_port` on the instance's host."""
        try:
            return self.ports[guest_port]
        except KeyError:
            raise HypervisorError(f"the instance has no forward for guest port {guest_port}; run update-instances",
                                  field="ports") from None

    def port(self, guest_port: int) -> tuple[str, int]:
        """(address, port) on this machine that reaches `guest_port`: the forward itself when
        direct, else a tunnel forward on 127.0.0.1 (it connects lazily: no wait here)."""
        host_port = self.host_port(guest_port)
        if self.endpoint is None or self.tunnels is None:
            return LOOPBACK, host_port
        return LOOPBACK, self.tunnels.forward(self.endpoint, host_port)

    def connector(self, guest_port: int = SSH_PORT) -> Callable[[], paramiko.Channel] | None:
        """A socket factory for GuestSSH(sock=...) (None when direct: a plain TCP connect)."""
        endpoint, tunnels = self.endpoint, self.tunnels
        if endpoint is None or tunnels is None:
            return None
        host_port = self.host_port(guest_port)
        return lambda: tunnels.open_channel(endpoint, host_port)

    def check(self) -> None:
        """Raise TunnelError if the host cannot be reached now (nothing to check when direct)."""
        if self.endpoint is not None and self.tunnels is not None:
            self.tunnels.transport(self.endpoint)


def direct(ports: Mapping[int, int]) -> Route:
    return Route(dict(ports))


def tunnelled(ports: Mapping[int, int], tunnels: Tunnels, endpoint: SshEndpoint) -> Route:
    return Route(dict(ports), endpoint, tunnels)


def endpoint_for(uri: str, ssh: str | None) -> SshEndpoint | None:
    """The SSH server that reaches the loopback of host `uri`: `ssh` (`[user@]host[:port]`, the
    user defaulting to this one, as ssh does), else the URI's own for qemu+ssh; None for a host
    on this machine's loopback (qemu:///..., test:///..., a 127.0.0.1 or localhost URI).
    HypervisorError naming the host when there is no way."""
    if ssh:
        return SshEndpoint.parse(ssh if "@" in ssh else f"{getpass.getuser()}@{ssh}", field=uri)
    try:
        return SshEndpoint.from_uri(uri, field=uri)
    except ModelError:
        pass
    try:
        host = urlsplit(uri).hostname
    except ValueError:
        host = None
    if host in _LOCAL_NAMES:
        return None
    raise HypervisorError(f"no SSH way to the guests of {uri}: give its region host an ssh address "
                          "(user@host[:port]) to tunnel through", field=uri)
