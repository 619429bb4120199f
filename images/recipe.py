"""Recipes: what goes into an image version of a SKU (images/recipes/<name>.toml + overlay), and
which recipe a build uses: `--recipe`, else the one named like the SKU, else the lab's default."""
from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from controller.core.errors import ImageError

RECIPES_DIR = Path(__file__).with_name("recipes")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")  # as a SKU name: no '/', no '..', no newline
# Bumped when the build steps change in a way that changes the package-set tarball.
BUILDER_REVISION = "1"
DEFAULT = "debian-12"  # the lab's default recipe

_FIELDS = {
    "description", "suite", "architecture", "variant", "disk_size_gb", "packages",
    "path_exclude", "path_include", "mask_units", "enable_units", "kernel_cmdline", "commands", "skus",
}


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    description: str
    suite: str
    architecture: str
    variant: str
    disk_size_gb: int
    packages: tuple[str, ...]
    kernel_cmdline: str
    path_exclude: tuple[str, ...] = ()
    path_include: tuple[str, ...] = ()
    mask_units: tuple[str, ...] = ()
    enable_units: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    overlay: Path | None = None
    skus: tuple[str, ...] = ()  # Azure SKU names it stands for besides its own name (e.g. "12")
    content_hash: str = field(default="", compare=False)


def available(recipes_dir: Path = RECIPES_DIR) -> list[str]:
    return sorted(p.stem for p in recipes_dir.glob("*.toml"))


# Used per version (grub.cfg, disk size) or only to pick the recipe, not by the package set:
# not part of its cache key.
_PER_VERSION = {"kernel_cmdline", "disk_size_gb", "description", "skus"}


def _hash(body: dict, overlay: Path | None) -> str:
    h = hashlib.sha256(f"builder:{BUILDER_REVISION}\n".encode())
    h.update(json.dumps({k: v for k, v in body.items() if k not in _PER_VERSION}, sort_keys=True).encode())
    if overlay and overlay.is_dir():
        for p in sorted(overlay.rglob("*")):
            if p.is_file():
                rel = p.relative_to(overlay).as_posix()
                h.update(f"\n{rel} {p.stat().st_mode & 0o777:o}\n".encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def _is_name(name: object) -> bool:
    return isinstance(name, str) and bool(_NAME.fullmatch(name)) and ".." not in name


def load(name: str, recipes_dir: Path = RECIPES_DIR, field: str = "sku") -> Recipe:
    """Load a recipe by name; errors name `field` (for a name that is not a recipe) or the recipe's field."""
    if not _is_name(name):
        shown = (name if name.isprintable() else repr(name)[1:-1])[:80] if isinstance(name, str) else "?"
        raise ImageError(field, f"'{shown}' is not a recipe name: 1-80 letters, digits, '.', '-' or '_'",
                         "UnknownRecipe")
    path = recipes_dir / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(available(recipes_dir)) or "none"
        raise ImageError(field, f"no recipe '{name}' (known recipes: {known})", "UnknownRecipe")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ImageError(f"recipe {name}", f"invalid TOML: {exc}", "InvalidRecipe") from exc
    body = data.get("recipe")
    if not isinstance(body, dict):
        raise ImageError(f"recipe {name}", "missing [recipe] table", "InvalidRecipe")
    unknown = set(body) - _FIELDS
    if unknown:
        raise ImageError(f"recipe {name}.{sorted(unknown)[0]}", "unknown field", "InvalidRecipe")
    for req in ("suite", "packages", "kernel_cmdline"):
        if req not in body:
            raise ImageError(f"recipe {name}.{req}", "is required", "InvalidRecipe")
    size = body.get("disk_size_gb", 3)
    if not isinstance(size, int) or not 1 <= size <= 1024:
        raise ImageError(f"recipe {name}.disk_size_gb", "must be an integer from 1 to 1024", "InvalidRecipe")
    skus = body.get("skus", [])
    if not isinstance(skus, list) or not all(_is_name(x) for x in skus):
        raise ImageError(f"recipe {name}.skus", "must be a list of SKU names (1-80 letters, digits, '.', '-' "
                                                "or '_')", "InvalidRecipe")
    overlay = recipes_dir / name
    overlay = overlay if overlay.is_dir() else None
    return Recipe(
        name=name,
        path=path,
        description=str(body.get("description", "")),
        suite=str(body["suite"]),
        architecture=str(body.get("architecture", "amd64")),
        variant=str(body.get("variant", "apt")),
        disk_size_gb=size,
        packages=tuple(body["packages"]),
        kernel_cmdline=str(body["kernel_cmdline"]),
        path_exclude=tuple(body.get("path_exclude", ())),
        path_include=tuple(body.get("path_include", ())),
        mask_units=tuple(body.get("mask_units", ())),
        enable_units=tuple(body.get("enable_units", ())),
        commands=tuple(body.get("commands", ())),
        overlay=overlay,
        skus=tuple(skus),
        content_hash=_hash(body, overlay),
    )


@dataclass(frozen=True)
class Choice:
    """The recipe a build uses and why."""
    recipe: Recipe
    why: str

    def line(self) -> str:
        """One line for the build's output: `recipe: images/recipes/debian-12.toml (named like --sku 12)`."""
        path = self.recipe.path
        shown = path.relative_to(RECIPES_DIR.parents[1]) if path.is_relative_to(RECIPES_DIR.parents[1]) else path
        return f"recipe: {shown} ({self.why})"


def _declared(path: Path) -> list[str]:
    """A recipe's `skus`, read without loading it (a broken recipe declares nothing here)."""
    try:
        skus = tomllib.loads(path.read_text()).get("recipe", {}).get("skus", [])
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return []
    return [s for s in skus if isinstance(s, str)] if isinstance(skus, list) else []


def choose(sku: str, name: str | None = None, field: str = "--recipe",
           recipes_dir: Path = RECIPES_DIR) -> Choice:
    """`name` if given (errors name `field`); else the recipe named like `sku` (its file name, or a
    recipe listing it in `skus`; case-insensitive, as Azure's SKUs); else the lab's default."""
    if name is not None:
        return Choice(load(name, recipes_dir, field), f"given by {field}")
    names = available(recipes_dir)
    same = [n for n in names if n.lower() == sku.lower()]
    if same:
        return Choice(load(same[0], recipes_dir), f"named like --sku {sku}")
    declaring = [n for n in names if sku.lower() in (s.lower() for s in _declared(recipes_dir / f"{n}.toml"))]
    if len(declaring) > 1:
        raise ImageError("sku", f"recipes {' and '.join(declaring[:2])} both list '{sku}' in their skus: "
                                "give --recipe", "AmbiguousRecipe")
    if declaring:
        return Choice(load(declaring[0], recipes_dir), f"its skus list --sku {sku}")
    return Choice(load(DEFAULT, recipes_dir), f"the lab's default: no recipe is named like --sku {sku}")
