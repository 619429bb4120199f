"""locations/{loc}/publishers[/{p}/artifacttypes/vmimage/offers[/{o}/skus[/{s}/versions[/{v}]]]]:
the lab's gallery as Azure's marketplace images (`az vm image list --all|list-publishers|
list-offers|list-skus|show`, and the lookup `az vmss create --image P:O:S:latest` makes).

Lists are plain JSON arrays of VirtualMachineImageResource (`name`, `location`, `id`), as in
Azure; a version is a VirtualMachineImage (Linux, V1, x64). A location shows the versions
replicated to it (complete); the versions list leaves out those excluded from latest, so that
az's `$orderby=name desc&$top=1` picks what `latest` resolves to (an excluded version is still
read by its name). `$orderby` is `name` [asc|desc] (versions by number); `$top` cuts the list;
`$expand=properties` (or `properties/...`) adds each version's properties. Names compare
without regard to case and come back as published. What the lab lacks is 404 NotFound, naming it
and the `scaleset image build` command that makes it.
"""
from __future__ import annotations

from aiohttp import web

from controller.api import responses
from controller.api.context import ApiContext
from controller.api.router import Router, cacheable
from controller.api.scope import check_subscription
from controller.core.errors import ImageError, ModelError
from controller.model.scaleset import ImageReference
from controller.model.versions import LATEST, parse_version
from controller.ops.lab import Lab, build_command
from images.gallery import ImageVersion

LOC = "subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/publishers"
OFFERS = LOC + "/{p}/artifacttypes/vmimage/offers"
SKUS = OFFERS + "/{o}/skus"
VERSIONS = SKUS + "/{s}/versions"
MAX_TOP = 1000


def missing(loc: str, parts: list[str]) -> ModelError:
    """Azure's 404 for an image it lacks, naming it and the command that makes it."""
    p, o, s, v = (parts + [""] * 3)[:4]
    ref = ImageReference(p, o, s or "SKU", v or LATEST)
    return ModelError("imageReference", f"Artifact: VMImage was not found: the lab has no image '{':'.join(parts)}' "
                                        f"in location '{loc}'. Make it with: {build_command(ref)}", "NotFound")


def available(lab: Lab, loc: str) -> list[ImageVersion]:
    """The versions replicated to `loc` (complete)."""
    return [iv for iv in lab.gallery.list()
            if any(r.lower() == loc.lower() and lab.gallery.ready(iv, r) for r in iv.target_regions)]


def _is(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def narrowed(lab: Lab, loc: str, p: dict[str, str]) -> list[ImageVersion]:
    """The versions in `loc` under the path's publisher/offer/sku (as far as it names them); 404
    when a level the path names has none."""
    found, named = available(lab, loc), []
    for key, attr in (("p", "publisher"), ("o", "offer"), ("s", "sku")):
        if key not in p:
            break
        named.append(p[key])
        found = [iv for iv in found if _is(getattr(iv, attr), p[key])]
        if not found:
            raise missing(loc, named)
    return found


def resource(sub: str, loc: str, parts: list[str]) -> dict:
    """A VirtualMachineImageResource: parts are publisher[, offer[, sku[, version]]]."""
    path = f"/Subscriptions/{sub}/Providers/Microsoft.Compute/Locations/{loc}/Publishers/{parts[0]}"
    for label, name in zip(("ArtifactTypes/VMImage/Offers", "Skus", "Versions"), parts[1:]):
        path += f"/{label}/{name}"
    return {"name": parts[-1], "location": loc, "id": path}


def properties() -> dict:
    return {"osDiskImage": {"operatingSystem": "Linux"}, "dataDiskImages": [],
            "automaticOSUpgradeProperties": {"automaticOSUpgradeSupported": True},
            "hyperVGeneration": "V1", "architecture": "x64", "imageDeprecationStatus": {"imageState": "Active"}}


def image(sub: str, loc: str, iv: ImageVersion) -> dict:
    """A VirtualMachineImage."""
    return {**resource(sub, loc, [iv.publisher, iv.offer, iv.sku, iv.version]), "properties": properties()}


def names(items: list[str]) -> list[str]:
    """Distinct, as first published."""
    seen: dict[str, str] = {}
    for n in items:
        seen.setdefault(n.lower(), n)
    return list(seen.values())


def ordered(request: web.Request, items: list, key) -> list:
    """`$orderby` (name [asc|desc]) then `$top`."""
    order = " ".join(request.query.get("$orderby", "name").lower().split())
    if order not in ("name", "name asc", "name desc"):
        raise ModelError("$orderby", f"'{order[:40]}' is not supported: use 'name', 'name asc' or 'name desc'",
                         "InvalidParameter")
    items = sorted(items, key=key, reverse=order == "name desc")
    top = request.query.get("$top")
    if top is not None:
        if not (top.isascii() and top.isdigit() and 1 <= int(top) <= MAX_TOP):
            raise ModelError("$top", f"'{top[:20]}' is not a number from 1 to {MAX_TOP}", "InvalidParameter")
        items = items[:int(top)]
    return items


def register(router: Router, ctx: ApiContext) -> None:
    def level(parts_of):
        """A list handler: the distinct names `parts_of(iv)` returns under the path, ordered."""
        @cacheable()
        async def handler(request: web.Request, p: dict[str, str]) -> web.Response:
            check_subscription(p)
            found = await ctx.read(narrowed, p["loc"], p)
            depth = sum(k in p for k in "pos")
            prefix = [found[0].publisher, found[0].offer, found[0].sku][:depth] if found else []
            items = ordered(request, names([parts_of(iv) for iv in found]), str.lower)
            return responses.body([resource(p["sub"], p["loc"], [*prefix, n]) for n in items])
        return handler

    @cacheable()
    async def list_versions(request: web.Request, p: dict[str, str]) -> web.Response:
        check_subscription(p)
        found = [iv for iv in await ctx.read(narrowed, p["loc"], p) if not iv.exclude_from_latest]
        found = ordered(request, found, lambda iv: parse_version(iv.version))
        expand = request.query.get("$expand", "").lower().startswith("properties")
        return responses.body([image(p["sub"], p["loc"], iv) if expand else
                               resource(p["sub"], p["loc"], [iv.publisher, iv.offer, iv.sku, iv.version])
                               for iv in found])

    @cacheable()
    async def get_version(request: web.Request, p: dict[str, str]) -> web.Response:
        check_subscription(p)
        try:
            parse_version(p["v"], "version")
        except ImageError:
            raise missing(p["loc"], [p["p"], p["o"], p["s"], p["v"]]) from None
        found = [iv for iv in await ctx.read(narrowed, p["loc"], p) if iv.version == p["v"]]
        if not found:
            raise missing(p["loc"], [p["p"], p["o"], p["s"], p["v"]])
        return responses.body(image(p["sub"], p["loc"], found[0]))

    router.add("GET", LOC, level(lambda iv: iv.publisher))
    router.add("GET", OFFERS, level(lambda iv: iv.offer))
    router.add("GET", SKUS, level(lambda iv: iv.sku))
    router.add("GET", VERSIONS, list_versions)
    router.add("GET", VERSIONS + "/{v}", get_version)

