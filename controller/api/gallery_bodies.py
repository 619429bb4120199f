"""The bodies of gallery writes (PUT and PATCH of image versions), checked before any answer:
each field's type and range, the files they name (a source: images/source.py)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from controller.core.errors import ImageError, LabError, ModelError
from controller.model.jsonmap import json_object
from images.gallery import check_name
from images.source import SYSTEM, check_source

URI = "properties.storageProfile.osDiskImage.source.uri"
PUBLISHING = "properties.publishingProfile"
LAB = "properties.lab"
MAX_SCRIPTS = 32  # customize scripts of one build
MAX_REPLICAS = 100  # regionalReplicaCount (the lab keeps one copy per host)
# An ImageError's field (the CLI's flag) as the JSON path of the request.
_FIELDS = {"file": URI, "version": "galleryImageVersionName", "sku": LAB + ".recipe", "build": LAB,
           "--recipe": LAB + ".recipe"}


def publishing(props: dict) -> tuple[bool | None, list[str] | None]:
    """excludeFromLatest and targetRegions[].name of a request (None: not given)."""
    prof = json_object(props.get("publishingProfile"), PUBLISHING)
    exclude = prof.get("excludeFromLatest")
    if exclude is not None and not isinstance(exclude, bool):
        raise ModelError(PUBLISHING + ".excludeFromLatest", "must be true or false")
    targets = prof.get("targetRegions")
    if targets is None:
        return exclude, None
    if not isinstance(targets, list) or not targets:
        raise ModelError(PUBLISHING + ".targetRegions", "must be a non-empty list of {name, regionalReplicaCount}")
    regions = []
    if len(targets) > MAX_REPLICAS:
        raise ModelError(PUBLISHING + ".targetRegions", f"has {len(targets)} entries; at most {MAX_REPLICAS}")
    for n, t in enumerate(targets):
        field = f"{PUBLISHING}.targetRegions[{n}]"
        region = json_object(t, field)
        name = region.get("name")
        if not isinstance(name, str):
            raise ModelError(field + ".name", "is required: a region name")
        count = region.get("regionalReplicaCount")
        if count is not None and (type(count) is not int or not 1 <= count <= MAX_REPLICAS):
            raise ModelError(field + ".regionalReplicaCount", f"must be a whole number from 1 to {MAX_REPLICAS}")
        kind = region.get("storageAccountType")
        if kind is not None and not isinstance(kind, str):
            raise ModelError(field + ".storageAccountType", "must be a string")
        regions.append(check_name(field + ".name", name))
    return exclude, regions


def local_path(value: Any, field: str) -> Path:
    """An absolute path or file:// URL of this machine (not looked at)."""
    if not isinstance(value, str) or not value or "\0" in value:
        raise ModelError(field, "must be an absolute path or a file:// URL")
    url = urlparse(value)
    if url.scheme == "file":
        if url.netloc not in ("", "localhost"):
            raise ModelError(field, "a file:// URL must name a file of this machine (no host)")
        value = unquote(url.path)
    elif url.scheme and len(url.scheme) > 1:
        raise ModelError(field, f"'{url.scheme}' URLs are not supported: the lab reads local files only")
    path = Path(value)
    if "\0" in str(path) or not path.is_absolute():
        raise ModelError(field, "must be an absolute path (the controller's working folder is not the caller's)")
    return path


def local_file(value: Any, field: str, home: Path) -> Path:
    """The resolved path of a readable regular file of this machine outside the lab's home and
    /proc, /sys, /dev: one answer for all that is not (which files exist is not told)."""
    path = local_path(value, field)
    refusal = ModelError(field, f"{str(path)[:200]} is not a readable regular file (outside the lab's home, "
                                "/proc, /sys and /dev)")
    try:
        real = path.resolve(strict=True)
        lab = home.resolve()
    except (OSError, RuntimeError):
        raise refusal from None
    if any(real == top or top in real.parents for top in (lab, *SYSTEM)) or not real.is_file() \
            or not os.access(real, os.R_OK):
        raise refusal
    return real


def content(props: dict, home: Path | None = None) -> tuple[Path | None, str | None, list[Path]]:
    """What a request would publish: (source, recipe, customize); (None, None, []) for nothing.
    With `home` (the lab's), the files are checked: a self-contained qcow2 and readable scripts
    outside it; without, the source's path is only read (to compare with a version's)."""
    storage = json_object(props.get("storageProfile"), "properties.storageProfile")
    if storage.get("source") is not None:
        raise ModelError("properties.storageProfile.source", "the lab imports qcow2 files only: give " + URI)
    if storage.get("dataDiskImages"):
        raise ModelError("properties.storageProfile.dataDiskImages", "the lab's images have an OS disk only")
    disk = json_object(storage.get("osDiskImage"), "properties.storageProfile.osDiskImage")
    uri = json_object(disk.get("source"), "properties.storageProfile.osDiskImage.source").get("uri")
    lab = json_object(props.get("lab"), LAB)
    unknown = sorted(set(lab) - {"recipe", "customize", "offer"})
    if unknown:
        raise ModelError(f"{LAB}.{unknown[0][:40]}", "unknown field (known: recipe, customize, offer)")
    wants_build = "recipe" in lab or "customize" in lab
    if uri is not None and wants_build:
        raise ModelError(LAB, f"give either {URI} (import) or properties.lab.recipe/customize (build), not both")
    if uri is not None:
        path = local_path(uri, URI)
        if home is None:
            return path, None, []
        try:
            return check_source(path, URI, home), None, []
        except ImageError as exc:
            raise refield(exc) from None
    if not wants_build:
        return None, None, []
    recipe, scripts = lab.get("recipe"), lab.get("customize", [])
    if recipe is not None and not isinstance(recipe, str):
        raise ModelError(LAB + ".recipe", "must be a recipe name (a string)")
    if not isinstance(scripts, list) or len(scripts) > MAX_SCRIPTS:
        raise ModelError(LAB + ".customize", f"must be a list of at most {MAX_SCRIPTS} absolute paths of scripts")
    fields = [f"{LAB}.customize[{n}]" for n in range(len(scripts))]
    if home is None:
        return None, recipe or "", [local_path(s, f) for s, f in zip(scripts, fields)]
    return None, recipe or "", [local_file(s, f, home) for s, f in zip(scripts, fields)]


def request_properties(body: Any) -> dict:
    """A PUT's or PATCH's `properties`, after the top-level fields were checked."""
    body = json_object(body, "body")
    location = body.get("location")
    if location is not None and (not isinstance(location, str) or len(location) > 90):
        raise ModelError("location", "must be a region name (a string)")
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, dict) or len(tags) > 50
                             or not all(isinstance(v, str) and len(k) <= 512 and len(v) <= 256
                                        for k, v in tags.items())):
        raise ModelError("tags", "must be an object of at most 50 string values")
    return json_object(body.get("properties"), "properties")


def refield(exc: ImageError) -> LabError:
    """An ImageError of the gallery or builder naming the request's field instead of the CLI's flag."""
    field = _FIELDS.get(exc.field) or exc.field
    if exc.field.startswith("customize["):
        field = f"{LAB}.{exc.field}"
    return LabError(field, exc.reason, exc.code)
