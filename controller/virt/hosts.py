"""One libvirt connection per host URI: opened on first use, reused, reopened once it died.

A host that does not answer never hangs the caller: a remote connect runs in a daemon thread
and gives up after `timeout` seconds (one pending connect per host, so a dead host costs one
thread, not one per call), and a remote connection sends libvirt keepalives, so a call on a
host that stops answering fails within hypervisor.KEEPALIVE's interval x (count + 1) seconds
instead of blocking. `states()` reads the domains of many hosts at once, each host bounded by `timeout`.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import libvirt

from controller.core import signals
from controller.core.errors import HypervisorError
from controller.virt.hypervisor import Hypervisor

TIMEOUT = 10.0  # seconds a host has to answer a connect (and a listing of its domains)
UNKNOWN = "unknown"  # the state of a domain on a host that does not answer

def down(uri: str, why: str) -> HypervisorError:
    return HypervisorError(f"host {uri} does not answer: {why}", field=uri)


@dataclass(frozen=True)
class HostStates:
    """Domain states read from several hosts: `states[domain]` as Hypervisor.states() gives it
    (UNKNOWN for a domain on a host that did not answer); `unreachable[domain]`: why."""

    states: dict[str, str | None]
    unreachable: dict[str, str]


class Connections:
    """`local`: the lab's own connection (opened by the caller, as before: no thread, no timeout)."""

    def __init__(self, local: Callable[[], Hypervisor], local_uri: str, timeout: float = TIMEOUT) -> None:
        self._local, self.local_uri, self.timeout = local, local_uri, timeout
        self._open: dict[str, Hypervisor] = {}
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()

    def get(self, uri: str | None) -> Hypervisor:
        """The connection to `uri` (None or the local URI: the local one); HypervisorError naming
        the host when it does not answer within `timeout` seconds."""
        if uri is None or uri == self.local_uri:
            return self._local()
        with self._lock:
            hv = self._open.get(uri)
            if hv is not None and _alive(hv):
                return hv
            if hv is not None:  # died (keepalive, a closed socket): reopened below
                del self._open[uri]
                threading.Thread(target=hv.close, daemon=True).start()
            fut = self._pending.get(uri)
            if fut is None:
                fut = self._pending[uri] = self._start(uri)
        return self._wait(uri, fut)

    def _start(self, uri: str) -> Future:
        fut: Future = Future()

        def run() -> None:
            try:
                hv = Hypervisor(uri)  # with libvirt keepalives (hypervisor.KEEPALIVE)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                with self._lock:
                    self._pending.pop(uri, None)
                fut.set_exception(exc)
                return
            with self._lock:
                self._pending.pop(uri, None)
                self._open[uri] = hv
            fut.set_result(hv)

        threading.Thread(target=run, name="scaleset-libvirt-connect", daemon=True).start()
        return fut

    def _wait(self, uri: str, fut: Future) -> Hypervisor:
        deadline = time.monotonic() + self.timeout
        while True:
            signals.check()
            try:
                return fut.result(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
            except FutureTimeout:
                if time.monotonic() >= deadline:
                    raise down(uri, f"no answer from libvirt within {self.timeout:g} s") from None
            except HypervisorError as exc:
                raise down(uri, exc.reason) from None

    def drop(self, uri: str) -> None:
        """Forget the connection to `uri` (it failed a call): the next use opens a new one."""
        with self._lock:
            hv = self._open.pop(uri, None)
        if hv is not None:
            threading.Thread(target=hv.close, daemon=True).start()

    def call(self, uri: str | None, fn: Callable[[Hypervisor], object]) -> object:
        """fn(connection to `uri`), bounded by `timeout` on a remote host (HypervisorError naming
        it, and the connection dropped, when the host does not answer)."""
        hv = self.get(uri)
        if uri is None or uri == self.local_uri:
            return fn(hv)
        try:
            return signals.interruptible(fn, hv, timeout=self.timeout)
        except TimeoutError:
            self.drop(uri)
            raise down(uri, f"no answer from libvirt within {self.timeout:g} s") from None
        except (libvirt.libvirtError, HypervisorError) as exc:  # HypervisorError: a lookup on a dead connection
            if not _alive(hv):
                self.drop(uri)
                why = exc.reason if isinstance(exc, HypervisorError) else exc.get_error_message() or str(exc)
                raise down(uri, why) from None
            raise

    def states(self, domains: Iterable[tuple[str | None, str]]) -> HostStates:
        """The state of each (host URI, domain), every host asked at once: a host that does not
        answer costs one `timeout` and leaves its domains UNKNOWN, with the reason."""
        by_host: dict[str | None, list[str]] = {}
        for uri, name in domains:
            by_host.setdefault(None if uri == self.local_uri else uri, []).append(name)
        states: dict[str, str | None] = {}
        unreachable: dict[str, str] = {}

        def one(uri: str | None, names: list[str]) -> None:
            try:
                states.update(self.call(uri, lambda hv: hv.states(names)))  # type: ignore[arg-type]
            except HypervisorError as exc:
                for n in names:
                    states[n], unreachable[n] = UNKNOWN, exc.reason

        remote = [(u, n) for u, n in by_host.items() if u is not None]
        if None in by_host:
            one(None, by_host[None])
        if remote:
            with ThreadPoolExecutor(max_workers=min(8, len(remote))) as pool:
                list(pool.map(lambda un: one(*un), remote))
        return HostStates(states, unreachable)

    def close(self) -> None:
        """Close every remote connection (the local one is its owner's)."""
        with self._lock:
            conns, self._open = list(self._open.values()), {}
        for hv in conns:
            hv.close()


def _alive(hv: Hypervisor) -> bool:
    return hv.alive()
