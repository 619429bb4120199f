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
