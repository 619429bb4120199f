import json
import subprocess
import sys

import pytest

from controller.cli.main import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_image_import_list_update_show(lab, capsys, qcow2_file):
    ref = ["--publisher", "Contoso", "--offer", "debian", "--sku", "debian-12"]
    assert run(capsys, "image", "list")[1].strip() == "[]"
    code, out, _ = run(capsys, "image", "import", *ref, "--version", "1.0.0", "--file", str(qcow2_file))
    assert code == 0 and json.loads(out)["urn"] == "Contoso:debian:debian-12:1.0.0"
    run(capsys, "image", "import", *ref, "--version", "1.1.0", "--file", str(qcow2_file))
    code, out, _ = run(capsys, "image", "update", *ref, "--version", "1.1.0", "--exclude-from-latest", "true")
    assert json.loads(out)["publishingProfile"]["excludeFromLatest"] is True
    code, out, _ = run(capsys, "image", "show", *ref, "--version", "latest")
    assert json.loads(out)["name"] == "1.0.0"
    listed = json.loads(run(capsys, "image", "list", "--sku", "debian-12")[1])
    assert [e["name"] for e in listed] == ["1.0.0", "1.1.0"]
    assert json.loads(run(capsys, "image", "list", "--offer", "ubuntu")[1]) == []


def test_errors_name_the_field_and_exit_nonzero(lab, capsys, qcow2_file):
    ref = ["--publisher", "Contoso", "--offer", "debian", "--sku", "debian-12"]
    code, out, err = run(capsys, "image", "import", *ref, "--version", "1.0", "--file", str(qcow2_file))
    assert code == 1 and out == ""
    assert err.startswith("ERROR: (InvalidImageVersion) version: '1.0' is malformed")
    code, _, err = run(capsys, "image", "build", "--publisher", "p", "--offer", "o", "--sku", "12",
                       "--version", "1.0.0", "--recipe", "nope")
    assert code == 1 and err.startswith("ERROR: (UnknownRecipe) --recipe: no recipe 'nope' (known recipes: debian-12")


@pytest.fixture
def no_build(monkeypatch):
    """Stops `image build` at the root check, after the recipe is chosen and said: no image is built."""
    from controller.core.errors import ImageError
    from images import builder

    def stop() -> None:
        raise ImageError("build", "stopped by the test")
    monkeypatch.setattr(builder, "_require_root", stop)


@pytest.mark.parametrize("args, line", [
    (["--publisher", "Debian", "--offer", "debian-12", "--sku", "12"],
     "recipe: images/recipes/debian-12.toml (its skus list --sku 12)"),
    (["--publisher", "Debian", "--offer", "debian-12", "--sku", "12-Gen2"],
     "recipe: images/recipes/debian-12.toml (its skus list --sku 12-Gen2)"),
    (["--publisher", "p", "--offer", "o", "--sku", "debian-12"],
     "recipe: images/recipes/debian-12.toml (named like --sku debian-12)"),
    (["--publisher", "p", "--offer", "o", "--sku", "custom", "--recipe", "debian-12"],
     "recipe: images/recipes/debian-12.toml (given by --recipe)"),
    (["--publisher", "p", "--offer", "o", "--sku", "trixie"],
     "recipe: images/recipes/debian-12.toml (the lab's default: no recipe is named like --sku trixie)"),
])
def test_image_build_says_which_recipe_and_why(lab, capsys, no_build, args, line):
    code, out, err = run(capsys, "image", "build", *args, "--version", "1.0.0")
    assert (code, out) == (1, "")
    assert err.splitlines() == [line, "ERROR: (InvalidParameter) build: stopped by the test"]
    assert run(capsys, "image", "list")[1].strip() == "[]"


def test_bad_boolean_is_a_usage_error(lab):
    with pytest.raises(SystemExit) as exc:
        main(["image", "update", "--publisher", "p", "--offer", "o", "--sku", "s", "--version", "1.0.0",
              "--exclude-from-latest", "maybe"])
    assert exc.value.code == 2


def test_console_script_says_which_acceleration():
    out = subprocess.run([sys.executable, "-m", "controller.cli", "accel"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("accel: ")


def test_main_called_as_a_function_gives_the_signal_handlers_back(lab, capsys):
    """main(argv) from code (tests, scripts) leaves the caller's SIGINT/SIGTERM handling as it was."""
    import signal
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert run(capsys, "image", "list")[0] == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert signal.set_wakeup_fd(-1) == -1


def test_a_reader_that_left_is_exit_141_without_a_traceback(lab):
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "image", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # `| head` gone before the output comes
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 141 and "Traceback" not in err and "Exception ignored" not in err, err
