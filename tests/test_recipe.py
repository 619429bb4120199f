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


def test_the_recipe_is_the_flag_else_named_like_the_sku_else_the_default(tmp_path):
    d = _copy(tmp_path)
    (d / "trixie.toml").write_text((d / "debian-12.toml").read_text().replace("bookworm", "trixie")
                                   .replace('skus = ["12", "12-gen2"]', 'skus = ["13"]'))
    picks = {(sku, name): (c.recipe.name, c.why) for sku, name in
             [("12", None), ("12-GEN2", None), ("Debian-12", None), ("13", None), ("trixie", None),
              ("11", None), ("12", "trixie")]
             for c in [recipe.choose(sku, name, recipes_dir=d)]}
    assert picks == {
        ("12", None): ("debian-12", "its skus list --sku 12"),
        ("12-GEN2", None): ("debian-12", "its skus list --sku 12-GEN2"),  # SKUs ignore case, as in Azure
        ("Debian-12", None): ("debian-12", "named like --sku Debian-12"),
        ("13", None): ("trixie", "its skus list --sku 13"),
        ("trixie", None): ("trixie", "named like --sku trixie"),
        ("11", None): (recipe.DEFAULT, "the lab's default: no recipe is named like --sku 11"),
        ("12", "trixie"): ("trixie", "given by --recipe"),
    }
    assert recipe.choose("12").line() == "recipe: images/recipes/debian-12.toml (its skus list --sku 12)"


def test_a_missing_recipe_names_the_flag_and_two_claims_on_a_sku_are_refused(tmp_path):
    for name in ("nope", "../debian-12", "debian-12\n"):
        with pytest.raises(ImageError) as err:
            recipe.choose("12", name, field="--recipe")
        assert (err.value.field, err.value.code) == ("--recipe", "UnknownRecipe")
    d = _copy(tmp_path)
    shutil.copy(d / "debian-12.toml", d / "bookworm.toml")
    with pytest.raises(ImageError) as err:
        recipe.choose("12", recipes_dir=d)
    assert err.value.code == "AmbiguousRecipe" and "bookworm and debian-12" in err.value.reason
    assert recipe.choose("12", "bookworm", recipes_dir=d).recipe.name == "bookworm"


def test_skus_do_not_change_the_package_set_and_are_checked(tmp_path):
    d = _copy(tmp_path)
    toml = d / "debian-12.toml"
    base = recipe.load("debian-12", d)
    assert base.skus == ("12", "12-gen2")
    toml.write_text(toml.read_text().replace('skus = ["12", "12-gen2"]', 'skus = ["12"]'))
    assert recipe.load("debian-12", d).content_hash == base.content_hash  # no rebuild of the cached package set
    toml.write_text(toml.read_text().replace('skus = ["12"]', 'skus = ["../12"]'))
    with pytest.raises(ImageError, match="skus"):
        recipe.load("debian-12", d)


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
