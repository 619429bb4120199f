from controller.virt.readiness import SEP, console_finished, parse_readiness


def test_readiness_output_is_parsed():
    out = (f'{{"v1": {{"datasource": "DataSourceNoCloud", "errors": []}}}}\n{SEP}\nabc-123\n{SEP}\n'
           '{"publisher": "p", "version": "1.0.0"}\n')
    assert parse_readiness(out) == ("done", "abc-123", {"publisher": "p", "version": "1.0.0"})
    failed = f'{{"v1": {{"errors": ["module x failed"]}}}}\n{SEP}\nid\n{SEP}\n'
    assert parse_readiness(failed) == ("error", "id", {})
    assert parse_readiness("garbage")[0] == "unknown"


def test_console_marker(tmp_path):
    log = tmp_path / "console.log"
    assert not console_finished(log)
    log.write_bytes(b"[ 5.0] cloud-init[1]: Cloud-init v. 22.4.2 running 'init-local'\n")
    assert not console_finished(log)
    log.write_bytes(log.read_bytes() + b"[ 9.0] cloud-init[2]: Cloud-init v. 22.4.2 finished at Sun\n")
    assert console_finished(log)


def test_console_tail_is_the_last_printable_line(tmp_path):
    from controller.virt.readiness import console_tail
    log = tmp_path / "console.log"
    log.write_bytes(b"x" * 5000 + b"\n[  OK  ] Reached target \x1b[1mNetwork\x1b[0m.\r\n\n")
    assert console_tail(log) == "[  OK  ] Reached target [1mNetwork[0m."
    assert console_tail(tmp_path / "missing.log") == ""


class _Dom:
    """A guest whose console is `log`: after a reset it boots to cloud-init's final message;
    `talk_after` seconds after its first look it finishes on its own."""
    FINISHED = b"Cloud-init v. 22.4 finished at now\n"

    def __init__(self, log, paused_on_io: bool = False, talk_after: float | None = None) -> None:
        self.log, self.paused_on_io, self.talk_after, self.resets, self.t0 = log, paused_on_io, talk_after, 0, None

    def state(self) -> str:
        import time
        self.t0 = self.t0 or time.monotonic()
        if self.talk_after is not None and time.monotonic() - self.t0 > self.talk_after:
            self.log.write_bytes(self.log.read_bytes() + self.FINISHED)
        return "paused" if self.paused_on_io else "running"

    def io_error(self) -> bool:
        return self.paused_on_io

    def reset(self) -> None:
        self.resets += 1
        self.log.write_bytes(self.FINISHED)


class _Hv:
    """`unanswered` looks fail as a stalled libvirtd's do, then the guest is there."""
    uri = "test:///default"

    def __init__(self, dom: _Dom, unanswered: int = 0) -> None:
        self.dom, self.unanswered = dom, unanswered

    def lookup(self, name):
        from controller.core.errors import HypervisorError
        if self.unanswered:
            self.unanswered -= 1
            raise HypervisorError("libvirt at test:///default: Cannot recv data: Connection reset by peer")
        return self.dom


class _Guest:
    """SSH that answers at once with a finished cloud-init (the console is what is tested)."""
    def wait(self, deadline):
        pass

    def run(self, cmd, timeout):
        from types import SimpleNamespace
        return SimpleNamespace(stdout=f'{{"v1": {{"errors": []}}}}\n{SEP}\nboot-1\n{SEP}\n{{}}\n')

    def close(self):
        pass


def test_a_guest_paused_on_a_disk_error_fails_saying_so(tmp_path):
    import time

    import pytest

    from controller.virt.readiness import wait_ready
    log = tmp_path / "c.log"
    with pytest.raises(RuntimeError, match=r"paused on a disk I/O error \(a full disk\? \d+ MiB free"):
        wait_ready(_Hv(_Dom(log, paused_on_io=True)), "g", log, _Guest(), time.monotonic(), timeout=40)


def test_a_silent_console_gets_one_reset_and_a_talking_one_none(tmp_path, monkeypatch):
    import time

    from controller.virt import readiness
    monkeypatch.setattr(readiness, "SILENT_RESET", 0.5)
    log = tmp_path / "c.log"
    silent = _Dom(log)  # prints nothing until it is reset
    r = readiness.wait_ready(_Hv(silent), "g", log, _Guest(), time.monotonic(), timeout=60)
    assert silent.resets == 1 and r.timings["silentConsoleReset"] > 0.5 and r.boot_id == "boot-1"
    log.write_bytes(b"[  OK  ] Started a unit.\n")
    talking = _Dom(log, talk_after=1.0)
    r = readiness.wait_ready(_Hv(talking), "g", log, _Guest(), time.monotonic(), timeout=60)
    assert talking.resets == 0 and "silentConsoleReset" not in r.timings


def test_a_libvirt_that_stops_answering_does_not_fail_a_boot(tmp_path, caplog):
    import time

    from controller.virt.readiness import wait_ready
    log = tmp_path / "c.log"
    log.write_bytes(b"[  OK  ] Started a unit.\n")
    hv = _Hv(_Dom(log, talk_after=0.5), unanswered=3)
    r = wait_ready(hv, "g", log, _Guest(), time.monotonic(), timeout=60)
    assert r.boot_id == "boot-1" and hv.unanswered == 0
    said = [m for m in caplog.messages if "libvirt does not answer" in m]
    assert len(said) == 1 and "Connection reset by peer" in said[0]  # said once, not every poll


def test_a_guest_that_stopped_while_booting_says_why(tmp_path):
    import time

    import pytest

    from controller.virt.hypervisor import Hypervisor
    from controller.virt.readiness import wait_ready
    hv = Hypervisor("test:///default")
    dom = hv.define("<domain type='test'><name>why-stopped</name><memory>65536</memory>"
                    "<os><type>hvm</type></os></domain>")
    try:
        dom.start()
        hv.conn.lookupByName("why-stopped").destroy()  # a forced stop from another client
        log = tmp_path / "c.log"
        with pytest.raises(RuntimeError, match=r"why-stopped stopped while booting: it was destroyed \(a forced stop"):
            wait_ready(hv, "why-stopped", log, _Guest(), time.monotonic(), timeout=40)
        dom.undefine()
        with pytest.raises(RuntimeError, match="stopped while booting: it is no longer defined"):
            wait_ready(hv, "why-stopped", log, _Guest(), time.monotonic(), timeout=40)
    finally:
        hv.close()


def test_the_labs_own_connection_is_opened_again_once_it_died(flab):
    first = flab.hv
    assert flab.hv is first  # reused while alive
    first.conn.close()  # as libvirt closes a connection whose daemon missed its keepalives
    second = flab.hv
    assert second is not first and second.alive() and flab.hosts.get(None) is second


class _RawDom:
    """libvirt's domain object whose first `fails` creates fail with `why`."""
    def __init__(self, fails: int, why: str) -> None:
        self.fails, self.why, self.creates, self.active = fails, why, 0, False

    def name(self):
        return "g"

    def isActive(self):
        return self.active

    def create(self):
        import libvirt
        self.creates += 1
        if self.creates <= self.fails:
            raise libvirt.libvirtError(f"failed to load cgroup BPF prog: {self.why}")
        self.active = True


def test_a_start_that_fails_with_eagain_is_tried_again_and_another_failure_is_not():
    import pytest

    from controller.core.errors import HypervisorError
    from controller.virt.hypervisor import Domain
    flaky = _RawDom(2, "Resource temporarily unavailable")
    Domain(flaky).start()
    assert flaky.creates == 3 and flaky.active
    with pytest.raises(HypervisorError, match="cannot start g: failed to load cgroup BPF prog: Resource temp"):
        Domain(_RawDom(3, "Resource temporarily unavailable")).start()
    broken = _RawDom(1, "Permission denied")
    with pytest.raises(HypervisorError, match="Permission denied"):
        Domain(broken).start()
    assert broken.creates == 1
