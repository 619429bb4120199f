"""Recipes: what goes into an image version of a SKU (images/recipes/<sku>.toml + overlay)."""
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

_FIELDS = {
    "description", "suite", "architecture", "variant", "disk_size_gb", "packages",
    "path_exclude", "path_include", "mask_units", "enable_units", "kernel_cmdline", "commands",
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
    content_hash: str = field(default="", compare=False)


def available(recipes_dir: Path = RECIPES_DIR) -> list[str]:
    return sorted(p.stem for p in recipes_dir.glob("*.toml"))


# Used per version (grub.cfg, disk size), not by the package set: not part of its cache key.
_PER_VERSION = {"kernel_cmdline", "disk_size_gb", "description"}


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


def load(name: str, recipes_dir: Path = RECIPES_DIR) -> Recipe:
    """Load a recipe by name; errors name the field and the reason."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        shown = (name if name.isprintable() else repr(name)[1:-1])[:80] if isinstance(name, str) else "?"
        raise ImageError("sku", f"'{shown}' is not a recipe name: 1-80 letters, digits, '.', '-' or '_'",
                         "UnknownRecipe")
    path = recipes_dir / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(available(recipes_dir)) or "none"
        raise ImageError("sku", f"no recipe '{name}' (known recipes: {known})", "UnknownRecipe")
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
        content_hash=_hash(body, overlay),
    )
