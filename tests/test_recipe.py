import shutil

import pytest

from controller.core.errors import ImageError
from images import recipe
from images.aptsources import host_sources


def test_shipped_recipe_loads_with_what_the_issue_asks_for():
    r = recipe.load("debian-12")
    for pkg in ("cloud-init", "openssh-server", "python3", "python3-aiohttp"):
        assert pkg in r.packages
    assert r.suite == "bookworm" and len(r.content_hash) == 64
    assert r.overlay and (r.overlay / "usr/share/scaleset-lab/cloud.cfg").is_file()


def test_unknown_recipe_names_the_known_ones():
    with pytest.raises(ImageError) as err:
        recipe.load("windows-11")
    assert err.value.field == "sku" and "debian-12" in err.value.reason


def _copy(tmp_path):
    d = tmp_path / "recipes"
    shutil.copytree(recipe.RECIPES_DIR, d)
    return d


def test_hash_follows_package_content_not_per_version_settings(tmp_path):
    d = _copy(tmp_path)
    base = recipe.load("debian-12", d).content_hash
    toml = d / "debian-12.toml"
    toml.write_text(toml.read_text().replace('kernel_cmdline = "', 'kernel_cmdline = "debug '))
    assert recipe.load("debian-12", d).content_hash == base  # grub.cfg is per version
    toml.write_text(toml.read_text().replace('"sudo",', '"sudo", "curl",'))
    with_curl = recipe.load("debian-12", d).content_hash
    assert with_curl != base
    (d / "debian-12/etc/motd").write_text("hello\n")
    assert recipe.load("debian-12", d).content_hash != with_curl


def test_bad_recipe_fields(tmp_path):
    d = _copy(tmp_path)
    toml = d / "debian-12.toml"
    toml.write_text(toml.read_text().replace("[recipe]", "[recipe]\ncolour = 'blue'"))
    with pytest.raises(ImageError, match="colour"):
        recipe.load("debian-12", d)


def test_apt_sources_from_one_line_and_deb822(tmp_path):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text("deb [signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
                                      "deb http://other.example/ubuntu jammy main\n")
    (etc / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.example\nSuites: bookworm\nComponents: main\n")
    assert host_sources("bookworm", etc).splitlines() == [
        "deb http://mirror.example/debian bookworm main",
        "deb http://deb.example/debian-security bookworm-security main"]
    with pytest.raises(ImageError, match="no apt source"):
        host_sources("trixie", etc)
