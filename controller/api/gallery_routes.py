"""galleries/{g}/images/{i}/versions/{v}: the lab's gallery in ARM's shape; GET and lists at
every level, PUT, PATCH and DELETE of versions.

Mapping: a gallery `{g}` is a publisher; an image definition `{i}` is a sku of it, with
`properties.identifier = {publisher, offer, sku}` (Linux, Generalized, V1) and the one offer the
(publisher, sku) has (two: 409 Conflict naming them); a version is ImageVersion.to_json() nested
under `properties`. Names compare without regard to case, as in ARM.
Galleries are lab-wide, not per resource group: every group sees the same versions, and ids
carry the request's group. A version shows once it is published, never half-made.

A PUT of a new version (a long-running operation) imports a self-contained qcow2
(`properties.storageProfile.osDiskImage.source.uri`: an absolute path or a file:// URL) or builds
one (`properties.lab.recipe`, default the recipe named like the sku, else the lab's default;
`properties.lab.customize`: script paths), as
`scaleset image import|build` do; the first version of a new image definition names its offer in
`properties.lab.offer` (there is no PUT of galleries or image definitions). A PUT of an existing
version, and a PATCH, change only excludeFromLatest and targetRegions (`az sig image-version update`).
A PUT or PATCH with targetRegions replicates the version to the hosts of its configured target
regions within the operation (controller/ops/replication.py): a host that fails ends it Failed,
`ReplicationFailed`, one error detail per host. GET with `$expand=ReplicationStatus` adds
`properties.replicationStatus`. DELETE removes the replicas too, or nothing (a replica in use, a
host that does not answer).
The controller reads those files as the user running it: the API is local-only (127.0.0.1). The
source is checked before the 201 (images/source.py: one answer for every file that is no readable
qcow2 outside the lab's home; no backing or external data file), the scripts likewise.
A version's `etag` (body and `ETag` header) is a hash of its record; If-Match / If-None-Match are
checked in the write's transaction. A build's child processes belong to this API (procs.Children):
they stop when it stops, and what stopped builds left is swept when it starts.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from controller.api import bodies, operations, responses
from controller.api.context import ApiContext
from controller.api.gallery_bodies import LAB, URI, content, publishing, refield, request_properties
from controller.api.preconditions import NONE, Preconditions, etag
from controller.api.router import Router, cacheable
from controller.api.scope import check_subscription, group
from controller.core import procs
from controller.core.errors import ImageError, ModelError
from controller.model.armid import DEFAULT_RESOURCE_GROUP, group_path
from controller.model.jsonmap import json_object
from controller.model.versions import parse_version
from controller.ops import replication
from controller.ops.lab import Lab
from controller.ops.resources import ResourceType
from images.builder import build
from images.gallery import DEFAULT_REGION, ImageVersion, check_name, sweep
from images.qcow2 import sha256_file
from images.recipe import choose as choose_recipe

log = logging.getLogger("scaleset.api")
GALLERIES = "subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/galleries"
IMAGES = GALLERIES + "/{g}/images"
VERSIONS = IMAGES + "/{i}/versions"
TYPE = "Microsoft.Compute/galleries"
API_VERSIONS = ("2024-03-03", "2023-07-03", "2022-08-03", "2022-03-03", "2021-10-01")


@dataclass(frozen=True)
class Image:
    """An image definition: the one (publisher, offer, sku) a gallery's image name stands for."""
    publisher: str
    offer: str
    sku: str


@dataclass(frozen=True)
class NewVersion:
    """A validated request to create a version: import `source`, or build `recipe` (None: the one
    named like the sku, or the default) + `customize`."""
    image: Image
    version: str
    source: Path | None
    recipe: str | None
    customize: list[Path]
    exclude: bool
    regions: list[str] | None


def gallery_id(rg: str, g: str) -> str:
    return f"{group_path(rg)}/providers/{TYPE}/{g}"


def gallery_view(rg: str, publisher: str) -> dict:
    return {"id": gallery_id(rg, publisher), "name": publisher, "type": TYPE, "location": DEFAULT_REGION,
            "properties": {"description": f"scaleset-lab images of publisher '{publisher}'",
                           "identifier": {"uniqueName": f"scaleset-lab-{publisher.upper()}"},
                           "provisioningState": "Succeeded"}}


def image_view(rg: str, img: Image) -> dict:
    return {"id": f"{gallery_id(rg, img.publisher)}/images/{img.sku}", "name": img.sku, "type": TYPE + "/images",
            "location": DEFAULT_REGION,
            "properties": {"identifier": {"publisher": img.publisher, "offer": img.offer, "sku": img.sku},
                           "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V1",
                           "architecture": "x64", "provisioningState": "Succeeded"}}


def version_view(rg: str, iv: ImageVersion, status: dict | None = None, state: str = "Succeeded") -> dict:
    """ARM's GalleryImageVersion: ImageVersion.to_json() nested under `properties`; `status`:
    its replicationStatus (only with $expand=ReplicationStatus, as in Azure)."""
    flat = iv.to_json()
    disk = flat["storageProfile"]["osDiskImage"]
    disk["sizeInGB"] = disk.pop("sizeInGb")  # the wire's spelling; az prints sizeInGb
    props = {"publishingProfile": flat["publishingProfile"], "storageProfile": flat["storageProfile"],
             "provisioningState": state}
    if status is not None:
        props["replicationStatus"] = status
    return {"id": f"{gallery_id(rg, iv.publisher)}/images/{iv.sku}/versions/{iv.version}", "name": iv.version,
            "type": flat["type"], "location": flat["location"], "tags": flat["tags"], "etag": etag_of(iv),
            "properties": props}


def etag_of(iv: ImageVersion) -> str:
    return etag(iv.etag)


def expecting(pre: Preconditions):
    """The check a write makes of the version as it reads it (None: it does not exist)."""
    return lambda iv: pre.check(None if iv is None else etag_of(iv))


def tagged(response: web.Response, iv: ImageVersion) -> web.Response:
    response.headers["ETag"] = etag_of(iv)
    return response


def _is(name: str, want: str) -> bool:
    return name.lower() == want.lower()


def publishers(lab: Lab) -> list[str]:
    """The galleries: one per publisher (spelled as first published)."""
    seen: dict[str, str] = {}
    for iv in lab.gallery.list():
        seen.setdefault(iv.publisher.lower(), iv.publisher)
    return list(seen.values())


def find_gallery(lab: Lab, g: str) -> list[ImageVersion]:
    """Every version of publisher `g`; 404 naming galleryName when it has none."""
    found = [iv for iv in lab.gallery.list() if _is(iv.publisher, g)]
    if not found:
        raise ModelError("galleryName", f"The Resource '{TYPE}/{g[:80]}' was not found (a gallery is a publisher "
                                        "with at least one image version).", "ResourceNotFound")
    return found


def images_of(versions: list[ImageVersion]) -> list[Image]:
    """The image definitions of a gallery's versions; 409 when a sku has two offers."""
    triples: dict[str, set[tuple[str, str, str]]] = {}
    for iv in versions:
        triples.setdefault(iv.sku.lower(), set()).add((iv.publisher, iv.offer, iv.sku))
    out = []
    for sku, found in triples.items():
        if len(found) > 1:
            urns = ", ".join(":".join(t) for t in sorted(found))
            raise ModelError("galleryImageName", f"image definition '{sku}' stands for more than one offer ({urns}); "
                                                 "the API maps a (publisher, sku) to one offer", "Conflict")
        out.append(Image(*found.pop()))
    return out


def find_image(lab: Lab, g: str, i: str) -> Image:
    for img in images_of([iv for iv in find_gallery(lab, g) if _is(iv.sku, i)]):
        return img
    raise ModelError("galleryImageName", f"The gallery image '{i[:80]}' of gallery '{g[:80]}' was not found.",
                     "GalleryImageNotFound")


def version_of(lab: Lab, img: Image, v: str) -> ImageVersion | None:
    parse_version(v, "galleryImageVersionName")
    return next((iv for iv in lab.gallery.list(img.publisher, img.offer, img.sku) if iv.version == v), None)


def find_version(lab: Lab, img: Image, v: str) -> ImageVersion:
    iv = version_of(lab, img, v)
    if iv is not None:
        return iv
    raise ModelError("galleryImageVersionName", f"The gallery image version '{v}' of image '{img.sku}' was not "
                                                "found.", "ImageVersionNotFound")


def _same_file(source: Path, iv: ImageVersion) -> bool:
    """The source is the version's own file, or has its content (a template deployed again)."""
    try:
        if source.resolve() == iv.path.resolve():
            return True
        return source.stat().st_size == iv.size_bytes and sha256_file(source) == iv.sha256
    except OSError:
        return False


def _immutable(iv: ImageVersion, props: dict) -> None:
    source, recipe, _ = content(props)
    if recipe is not None or (source is not None and not _same_file(source, iv)):
        raise ModelError("galleryImageVersionName", f"{iv.urn} already exists; versions are immutable (only "
                                                    "excludeFromLatest and targetRegions change)", "Conflict")


def update(lab: Lab, iv: ImageVersion, props: dict, pre: Preconditions = NONE
           ) -> tuple[ImageVersion, bool]:
    """The version after the update (`pre` checked as the write reads it); True when its
    targetRegions were given (to sync)."""
    exclude, regions = publishing(props)
    return lab.gallery.update(iv.publisher, iv.offer, iv.sku, iv.version, exclude_from_latest=exclude,
                              target_regions=regions, expect=expecting(pre)), regions is not None


def replicated(lab: Lab, rg: str, iv: ImageVersion, sync: bool = False) -> dict:
    """Replicate (after a targetRegions update: sync) the version; ReplicationFailed naming each
    host that failed, else the version's view."""
    reps = replication.sync_regions(lab, iv).replicas if sync else replication.replicate_version(lab, iv)
    failed = [r for r in reps if r.state != "Completed"]
    if failed:
        raise replication.ReplicationFailed(iv, failed)
    return version_view(rg, iv)


def plan(lab: Lab, g: str, i: str, v: str, props: dict, pre: Preconditions = NONE, write: bool = True
         ) -> NewVersion | tuple[ImageVersion, bool]:
    """Validate a PUT: the new version to create, or the existing one after its update (with
    `write` False, before it: a template's validate writes nothing)."""
    check_name("galleryName", g)
    check_name("galleryImageName", i)
    parse_version(v, "galleryImageVersionName")
    offer = json_object(props.get("lab"), LAB).get("offer")
    if offer is not None and not isinstance(offer, str):
        raise ModelError(LAB + ".offer", "must be an offer name (a string)")
    try:
        img = find_image(lab, g, i)
    except ModelError as exc:
        if exc.code == "Conflict":
            raise
        if offer is None:
            raise ModelError(LAB + ".offer", f"image definition '{i}' of gallery '{g}' has no version yet: name its "
                                             "offer here to publish its first one", "GalleryImageNotFound") from None
        img = Image(g, check_name(LAB + ".offer", offer), i)
    if offer is not None and not _is(offer, img.offer):
        raise ModelError(LAB + ".offer", f"image definition '{img.sku}' has offer '{img.offer}'")
    iv = version_of(lab, img, v)
    if iv is not None:
        _immutable(iv, props)
        if not write:
            pre.check(etag_of(iv))
            return iv, publishing(props)[1] is not None
        return update(lab, iv, props, pre)
    pre.check(None)
    exclude, regions = publishing(props)
    source, recipe, scripts = content(props, lab.paths.home)
    if source is None and recipe is None:
        raise ModelError(URI, f"is required: a qcow2 file to import, or {LAB}.recipe/customize to build one")
    if recipe is not None:
        recipe = recipe or None  # none given: the builder picks the one named like the sku, or the default
        try:
            choose_recipe(img.sku, recipe, LAB + ".recipe")
        except ImageError as exc:
            raise ModelError(LAB + ".recipe", exc.reason, exc.code) from None
    try:
        lab.gallery.check_new(img.publisher, img.offer, img.sku, v)
    except ImageError as exc:
        raise refield(exc) from None
    return NewVersion(img, v, source, recipe, scripts, bool(exclude), regions)


def create(lab: Lab, rg: str, new: NewVersion) -> dict:
    """Import or build the version (minutes for a build)."""
    img = new.image
    try:
        if new.source is not None:
            iv = lab.gallery.import_file(img.publisher, img.offer, img.sku, new.version, new.source, new.regions,
                                         exclude_from_latest=new.exclude)
        else:
            iv = build(lab.gallery, img.publisher, img.offer, img.sku, new.version, customize=new.customize,
                       recipe_name=new.recipe, target_regions=new.regions, log=lambda line: log.info("build: %s", line),
                       exclude_from_latest=new.exclude, recipe_field=LAB + ".recipe")
    except ImageError as exc:
        raise refield(exc) from None
    return replicated(lab, rg, iv)


def remove(lab: Lab, g: str, i: str, v: str, pre: Preconditions = NONE) -> bool:
    """Delete a version no instance uses (`pre` checked first and as the delete reads it); False
    when there is none."""
    try:
        iv = find_version(lab, find_image(lab, g, i), v)
    except ModelError as exc:
        if exc.status == 404:
            pre.check(None)
            return False
        raise
    check = expecting(pre)
    check(iv)  # before any replica goes
    try:
        replication.delete_version(lab, iv, check)
    except ImageError as exc:
        raise refield(exc) from None
    return True


def _segments(name: str) -> tuple[str, str, str]:
    """gallery/image/version of a template resource's name."""
    parts = name.split("/")
    if len(parts) != 3 or not all(parts):
        raise ModelError("name", f"'{name[:200]}' must be gallery/image/version for {TYPE}/images/versions")
    return parts[0], parts[1], parts[2]


def register(router: Router, ctx: ApiContext) -> None:
    creating: set[tuple[str, str, str]] = set()  # (publisher, sku, version), lower-case: under creation
    children = procs.Children()  # of the builds started here: they stop when the API stops
    ctx.on_shutdown.append(children.stop)
    for left in sweep(ctx.paths.gallery, ctx.paths.cache):  # what a stopped controller's builds left
        log.info("removed %s (left by a build or import that was stopped)", left)

    def owned_create(lab: Lab, rg: str, new: NewVersion) -> dict:
        with procs.owned_by(children):
            return create(lab, rg, new)

    def key(g: str, i: str, v: str) -> tuple[str, str, str]:
        return g.lower(), i.lower(), v

    @cacheable()
    async def list_galleries(request: web.Request, p: dict[str, str]) -> web.Response:
        check_subscription(p)
        rg = group(p) if "rg" in p else DEFAULT_RESOURCE_GROUP
        return responses.page(request, [gallery_view(rg, pub) for pub in await ctx.read(publishers)])

    @cacheable()
    async def get_gallery(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        return responses.body(gallery_view(rg, (await ctx.read(find_gallery, p["g"]))[0].publisher))

    @cacheable()
    async def list_images(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        found = await ctx.read(lambda lab: images_of(find_gallery(lab, p["g"])))
        return responses.page(request, [image_view(rg, img) for img in found])

    @cacheable()
    async def get_image(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        return responses.body(image_view(rg, await ctx.read(find_image, p["g"], p["i"])))

    @cacheable()
    async def list_versions(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)

        def items(lab: Lab) -> list[dict]:
            img = find_image(lab, p["g"], p["i"])
            return [version_view(rg, iv) for iv in lab.gallery.list(img.publisher, img.offer, img.sku)]
        return responses.page(request, await ctx.read(items))

    @cacheable(lambda r: "$expand" not in r.query)  # the cache keeps the ETag header with the body
    async def get_version(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        expand = request.query.get("$expand", "").lower() == "replicationstatus"

        def view(lab: Lab) -> tuple[dict, ImageVersion]:
            iv = find_version(lab, find_image(lab, p["g"], p["i"]), p["v"])
            return version_view(rg, iv, replication.replication_status(lab, iv) if expand else None), iv
        body, iv = await ctx.read(view)
        return tagged(responses.body(body), iv)

    def idle(rg: str, p: dict[str, str]) -> None:
        """Conflict while an update of the version replicates (two would upload one volume)."""
        if ctx.ops.running_on(f"{gallery_id(rg, p['g'])}/images/{p['i']}/versions/{p['v']}") is not None:
            raise ModelError("galleryImageVersionName", f"version '{p['v']}' is being updated (replicated)",
                             "Conflict")

    def updated(request: web.Request, rg: str, iv: ImageVersion, sync: bool) -> web.Response:
        """An updated version; with targetRegions, the replication is the long-running operation."""
        if not sync:
            return tagged(responses.body(version_view(rg, iv)), iv)
        view = version_view(rg, iv, state="Updating")
        op = ctx.ops.start("update", view["id"], DEFAULT_REGION, ctx.work(replicated, rg, iv, True))
        return tagged(responses.body(view, 200, operations.headers(request, op, location=False)), iv)

    def begin_create(rg: str, new: NewVersion):
        """The PUT's creation of a new version: its view (Creating) and its operation."""
        mine = key(new.image.publisher, new.image.sku, new.version)
        if mine in creating:
            raise ModelError("galleryImageVersionName", f"version '{new.version}' is being created", "Conflict")
        creating.add(mine)  # no await since the check: of two requests, one wins
        img = new.image
        view = {"id": f"{gallery_id(rg, img.publisher)}/images/{img.sku}/versions/{new.version}",
                "name": new.version, "type": TYPE + "/images/versions", "location": DEFAULT_REGION,
                "properties": {"provisioningState": "Creating"}}

        async def work() -> dict:
            try:
                return await ctx.work(owned_create, rg, new)
            finally:
                creating.discard(mine)
        return view, ctx.ops.start("create", view["id"], DEFAULT_REGION, work())

    async def put_version(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        pre = Preconditions.of(request.headers)
        props = request_properties(await bodies.read(request))
        idle(rg, p)
        new = await ctx.read(plan, p["g"], p["i"], p["v"], props, pre)
        if isinstance(new, tuple):  # an existing version: its publishingProfile was updated
            return updated(request, rg, *new)
        view, op = begin_create(rg, new)
        return responses.body(view, 201, operations.headers(request, op, location=False))

    async def deploy(rg: str, name: str, body: dict) -> dict:
        """A template's image version: the PUT's create or update, awaited to its end."""
        p = dict(zip(("g", "i", "v"), _segments(name), strict=True))
        props = request_properties(body)
        idle(rg, p)
        new = await ctx.read(plan, p["g"], p["i"], p["v"], props)
        if isinstance(new, tuple):
            iv, sync = new
            return await ctx.work(replicated, rg, iv, True) if sync else version_view(rg, iv)
        _, op = begin_create(rg, new)
        await ctx.ops.wait(op)
        if op.status != "Succeeded":
            err = op.error or {}
            raise ModelError(err.get("target") or "", err.get("message") or op.status, err.get("code"))
        return op.result

    def validate(lab: Lab, rg: str, name: str, body: dict):
        g, i, v = _segments(name)
        return plan(lab, g, i, v, request_properties(body), NONE, write=False)

    def read(lab: Lab, rg: str, name: str) -> dict | None:
        g, i, v = _segments(name)
        try:
            return version_view(rg, find_version(lab, find_image(lab, g, i), v))
        except ModelError as exc:
            if exc.status == 404:
                return None
            raise
    ctx.resource_types.add(ResourceType(TYPE + "/images/versions", validate, deploy, read, API_VERSIONS))

    async def patch_version(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        pre = Preconditions.of(request.headers)
        props = request_properties(await bodies.read(request))

        def write(lab: Lab) -> tuple[ImageVersion, bool]:
            iv = find_version(lab, find_image(lab, p["g"], p["i"]), p["v"])
            _immutable(iv, props)
            return update(lab, iv, props, pre)
        idle(rg, p)
        return updated(request, rg, *await ctx.read(write))

    async def delete_version(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        pre = Preconditions.of(request.headers)
        if key(p["g"], p["i"], p["v"]) in creating:
            raise ModelError("galleryImageVersionName", f"version '{p['v']}' is being created", "Conflict")
        idle(rg, p)
        return web.Response(status=200 if await ctx.read(remove, p["g"], p["i"], p["v"], pre) else 204)

    router.add("GET", "subscriptions/{sub}/providers/Microsoft.Compute/galleries", list_galleries)
    router.add("GET", GALLERIES, list_galleries)
    router.add("GET", GALLERIES + "/{g}", get_gallery)
    router.add("GET", IMAGES, list_images)
    router.add("GET", IMAGES + "/{i}", get_image)
    router.add("GET", VERSIONS, list_versions)
    for method, handler in (("GET", get_version), ("PUT", put_version), ("PATCH", patch_version),
                            ("DELETE", delete_version)):
        router.add(method, VERSIONS + "/{v}", handler)
