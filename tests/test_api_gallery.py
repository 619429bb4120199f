"""Azure's SDK (azure-mgmt-compute) against the gallery routes on the fake driver: galleries,
image definitions and versions listed and read, a version created by import as a long-running
operation, excluded from latest, refused deletes and bad requests (400 naming the field)."""
from __future__ import annotations

import os
import threading
import time

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import models as m

from controller.api import gallery_routes
from controller.core.errors import ImageError
from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from controller.model.armid import SUBSCRIPTION_ID
from tests.fakedriver import make_scale_set
from tests.helpers import make_qcow2
from tests.test_rolling import model

G, I = "scaleset-lab", "debian-12"  # the flab fixture's 1.0.0 is scaleset-lab:debian:debian-12
V = {"api-version": "2024-03-03"}
URI = "properties.storageProfile.osDiskImage.source.uri"



@pytest.fixture
def disk(tmp_path):
    return make_qcow2(tmp_path / "new" / "v2.qcow2", data=os.urandom(128 * 1024))


def version_body(uri: str, exclude: bool | None = None, regions: list[str] | None = None) -> m.GalleryImageVersion:
    prof = m.GalleryImageVersionPublishingProfile(
        exclude_from_latest=exclude, target_regions=[m.TargetRegion(name=r) for r in regions] if regions else None)
    return m.GalleryImageVersion(location="local", properties=m.GalleryImageVersionProperties(
        publishing_profile=prof, storage_profile=m.GalleryImageVersionStorageProfile(
            os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(uri=uri)))))


def raw(api, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, api.url(path), params=V, verify=str(api.ca), timeout=10,
                            headers={"Authorization": f"Bearer {api.token()}"}, **kw)


def test_galleries_images_and_versions_are_listed_and_read(api):
    client = api.client()
    assert [g.name for g in client.galleries.list_by_resource_group(RG)] == [G]
    assert [g.name for g in client.galleries.list()] == [G]
    gallery = client.galleries.get("any-group", G.upper())
    assert gallery.id == f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/any-group/providers/" \
                         f"Microsoft.Compute/galleries/{G}"
    assert gallery.properties.provisioning_state == "Succeeded"
    assert [i.name for i in client.gallery_images.list_by_gallery(RG, G)] == [I]
    image = client.gallery_images.get(RG, G, I)
    ident = image.properties.identifier
    assert (ident.publisher, ident.offer, ident.sku) == ("scaleset-lab", "debian", "debian-12")
    assert (image.properties.os_type, image.properties.os_state, image.properties.hyper_v_generation) == \
        ("Linux", "Generalized", "V1")
    versions = list(client.gallery_image_versions.list_by_gallery_image(RG, G, I))
    assert [v.name for v in versions] == ["1.0.0"]
    v = client.gallery_image_versions.get(RG, G, I, "1.0.0")
    assert v.id == f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RG}/providers/Microsoft.Compute/" \
                   f"galleries/{G}/images/{I}/versions/1.0.0" == versions[0].id
    props = v.properties
    assert props.provisioning_state == "Succeeded" and props.publishing_profile.exclude_from_latest is False
    assert [(t.name, t.regional_replica_count) for t in props.publishing_profile.target_regions] == [("local", 1)]
    assert props.storage_profile.os_disk_image.size_in_gb == 1
    assert props.storage_profile.os_disk_image.host_caching == "ReadWrite"
    assert props.replication_status is None  # only with $expand=ReplicationStatus, as in Azure
    status = client.gallery_image_versions.get(RG, G, I, "1.0.0", expand="ReplicationStatus").properties \
        .replication_status
    assert status.aggregated_state == "Completed"
    assert [(s.region, s.state, s.progress) for s in status.summary] == [("local", "Completed", 100)]


def test_unknown_galleries_images_and_versions_are_404_naming_the_field(api):
    client = api.client()
    for call, code, target in ((lambda: client.galleries.get(RG, "nobody"), "ResourceNotFound", "galleryName"),
                               (lambda: client.gallery_images.get(RG, G, "nope"), "GalleryImageNotFound",
                                "galleryImageName"),
                               (lambda: client.gallery_image_versions.get(RG, G, I, "9.9.9"), "ImageVersionNotFound",
                                "galleryImageVersionName")):
        with pytest.raises(ResourceNotFoundError) as err:
            call()
        assert (err.value.error.code, err.value.error.target) == (code, target)
    r = raw(api, "GET", f"galleries/{G}/images/{I}/versions/1.0")
    assert r.status_code == 400 and r.json()["error"]["target"] == "galleryImageVersionName"


def test_a_version_created_by_import_is_listed_and_is_latest_then_excluded(api, disk):
    client = api.client()
    poller = client.gallery_image_versions.begin_create_or_update(RG, G, I, "1.0.1", version_body(str(disk)))
    created = poller.result()
    assert poller.status() == "Succeeded"
    assert created.name == "1.0.1" and created.properties.provisioning_state == "Succeeded"
    assert created.id.endswith(f"/galleries/{G}/images/{I}/versions/1.0.1")
    assert disk.is_file(), "an import copies the file"
    assert [v.name for v in client.gallery_image_versions.list_by_gallery_image(RG, G, I)] == ["1.0.0", "1.0.1"]
    assert api.lab.gallery.resolve("scaleset-lab", "debian", "debian-12", "latest").version == "1.0.1"

    update = m.GalleryImageVersionUpdate(properties=m.GalleryImageVersionProperties(
        publishing_profile=m.GalleryImageVersionPublishingProfile(exclude_from_latest=True)))
    updated = client.gallery_image_versions.begin_update(RG, G, I, "1.0.1", update).result()
    assert updated.properties.publishing_profile.exclude_from_latest is True
    assert api.lab.gallery.resolve("scaleset-lab", "debian", "debian-12", "latest").version == "1.0.0"

    # az sig image-version update: GET, change publishingProfile, PUT the whole resource back
    got = client.gallery_image_versions.get(RG, G, I, "1.0.1")
    got.properties.publishing_profile.exclude_from_latest = False
    got.properties.publishing_profile.target_regions = [m.TargetRegion(name="local"), m.TargetRegion(name="west")]
    client.gallery_image_versions.begin_create_or_update(RG, G, I, "1.0.1", got).result()
    iv = api.lab.gallery.get("scaleset-lab", "debian", "debian-12", "1.0.1")
    assert not iv.exclude_from_latest and iv.target_regions == ("local", "west")


def test_a_version_created_excluded_never_counts_as_latest(api, disk):
    client = api.client()
    body = version_body(disk.as_uri(), exclude=True, regions=["local", "east"])
    client.gallery_image_versions.begin_create_or_update(RG, G, I, "2.0.0", body).result()
    iv = api.lab.gallery.get("scaleset-lab", "debian", "debian-12", "2.0.0")
    assert iv.exclude_from_latest and iv.target_regions == ("local", "east")
    assert api.lab.gallery.resolve("scaleset-lab", "debian", "debian-12", "latest").version == "1.0.0"


def finished(api, r: requests.Response) -> dict:
    """The operation resource of a 201, polled (as Azure's clients do) until it is no longer InProgress."""
    assert r.status_code == 201 and int(r.headers["Retry-After"]) >= 1, r.text
    for _ in range(600):
        op = requests.get(r.headers["Azure-AsyncOperation"], verify=str(api.ca), timeout=10,
                          headers={"Authorization": f"Bearer {api.token()}"}).json()
        if op["status"] != "InProgress":
            return op
        time.sleep(0.05)
    raise AssertionError(f"operation still in progress: {op}")


def test_the_first_version_of_a_new_image_names_its_offer(api, disk):
    storage = {"storageProfile": {"osDiskImage": {"source": {"uri": str(disk)}}}}
    r = raw(api, "PUT", "galleries/acme/images/noble/versions/1.0.0", json={"properties": storage})
    assert r.status_code == 404 and r.json()["error"]["target"] == "properties.lab.offer"
    r = raw(api, "PUT", "galleries/acme/images/noble/versions/1.0.0",
            json={"location": "local", "properties": {**storage, "lab": {"offer": "ubuntu"}}})
    assert r.json()["properties"]["provisioningState"] == "Creating"
    assert r.json()["id"].endswith("/galleries/acme/images/noble/versions/1.0.0")
    assert finished(api, r)["status"] == "Succeeded"
    client = api.client()
    assert sorted(g.name for g in client.galleries.list_by_resource_group(RG)) == ["acme", G]
    assert client.gallery_images.get(RG, "ACME", "noble").properties.identifier.offer == "ubuntu"
    assert api.lab.gallery.resolve("acme", "ubuntu", "noble", "latest").version == "1.0.0"
    r = raw(api, "PUT", "galleries/acme/images/noble/versions/1.0.1",
            json={"properties": {**storage, "lab": {"offer": "other"}}})
    assert r.status_code == 400 and r.json()["error"]["target"] == "properties.lab.offer"


def test_a_version_under_creation_is_not_created_twice_nor_deleted(api, disk, monkeypatch):
    gate, real = threading.Event(), gallery_routes.create

    def held(*args):
        assert gate.wait(30)
        return real(*args)
    monkeypatch.setattr(gallery_routes, "create", held)
    path = f"galleries/{G}/images/{I}/versions/1.0.1"
    first = raw(api, "PUT", path, json={"properties": source(str(disk))})
    try:
        assert first.status_code == 201
        again = raw(api, "PUT", path, json={"properties": source(str(disk))})
        assert again.status_code == 409 and again.json()["error"]["code"] == "Conflict"
        assert raw(api, "DELETE", path).status_code == 409
        assert raw(api, "GET", path).status_code == 404, "a version shows once it is published"
    finally:
        gate.set()
    assert finished(api, first)["status"] == "Succeeded"
    assert raw(api, "GET", path).json()["properties"]["provisioningState"] == "Succeeded"


def test_an_import_of_a_file_that_is_no_qcow2_is_refused_at_once_naming_the_uri(api, tmp_path):
    junk = tmp_path / "junk.qcow2"
    junk.write_bytes(b"not a disk" * 100)
    with pytest.raises(HttpResponseError) as err:
        api.client().gallery_image_versions.begin_create_or_update(RG, G, I, "1.0.1", version_body(str(junk)))
    assert (err.value.status_code, err.value.error.code, err.value.error.target) == (400, "InvalidParameter", URI)
    assert [v.version for v in api.lab.gallery.list()] == ["1.0.0"]


def test_deleting_a_version_in_use_is_409_and_an_unused_one_goes(api, driver, disk):
    make_scale_set(api.lab, model(capacity=1), driver, "1.0.0")
    client = api.client()
    with pytest.raises(HttpResponseError) as err:
        client.gallery_image_versions.begin_delete(RG, G, I, "1.0.0").result()
    assert err.value.status_code == 409 and err.value.error.code == "ImageVersionInUse"
    assert [v.version for v in api.lab.gallery.list()] == ["1.0.0"]
    client.gallery_image_versions.begin_create_or_update(RG, G, I, "1.0.1", version_body(str(disk))).result()
    path = api.lab.gallery.get("scaleset-lab", "debian", "debian-12", "1.0.1").path
    client.gallery_image_versions.begin_delete(RG, G, I, "1.0.1").result()
    assert [v.version for v in api.lab.gallery.list()] == ["1.0.0"] and not path.exists()
    with pytest.raises(ResourceNotFoundError):
        client.gallery_image_versions.get(RG, G, I, "1.0.1")


def put(api, version: str, props: dict) -> requests.Response:
    return raw(api, "PUT", f"galleries/{G}/images/{I}/versions/{version}", json={"location": "local",
                                                                                "properties": props})


def source(uri: str) -> dict:
    return {"storageProfile": {"osDiskImage": {"source": {"uri": uri}}}}


def test_bad_version_requests_are_refused_before_any_work(api, disk, tmp_path):
    cases = [
        ("1.0", source(str(disk)), 400, "galleryImageVersionName"),
        ("1.0.1", {}, 400, URI),
        ("1.0.1", source(str(tmp_path / "missing.qcow2")), 400, URI),
        ("1.0.1", source("relative/disk.qcow2"), 400, URI),
        ("1.0.1", source("https://example.invalid/disk.vhd"), 400, URI),
        ("1.0.1", {**source(str(disk)), "publishingProfile": {"excludeFromLatest": "yes"}}, 400,
         "properties.publishingProfile.excludeFromLatest"),
        ("1.0.1", {**source(str(disk)), "publishingProfile": {"targetRegions": [{"name": "bad region"}]}}, 400,
         "properties.publishingProfile.targetRegions[0].name"),
        ("1.0.1", {**source(str(disk)), "lab": {"recipe": "debian-12"}}, 400, "properties.lab"),
        ("1.0.1", {"lab": {"recipe": "no-such-recipe"}}, 400, "properties.lab.recipe"),
        ("1.0.1", {"lab": {"customize": [str(tmp_path / "missing.sh")]}}, 400, "properties.lab.customize[0]"),
        ("1.0.0", source(str(disk)), 409, "galleryImageVersionName"),
    ]
    for version, props, status, target in cases:
        r = put(api, version, props)
        assert (r.status_code, r.json()["error"]["target"]) == (status, target), (props, r.text)
        assert "Azure-AsyncOperation" not in r.headers and "Traceback" not in r.text
    assert [v.version for v in api.lab.gallery.list()] == ["1.0.0"]
    assert list(api.lab.paths.gallery.rglob(".import-*")) == []
    r = raw(api, "PATCH", f"galleries/{G}/images/{I}/versions/1.0.0", data=b'{"properties": ')
    assert r.status_code == 400 and r.json()["error"]["target"] == "body"


def test_a_build_with_a_missing_recipe_is_refused_with_400(api, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("no build may start")
    monkeypatch.setattr(gallery_routes, "build", never)
    r = raw(api, "PUT", f"galleries/{G}/images/no-recipe-sku/versions/1.0.0",
            json={"location": "local", "properties": {"lab": {"recipe": "no-such-recipe", "offer": "debian"}}})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "UnknownRecipe" and err["target"] == "properties.lab.recipe"
    assert len(api.lab.gallery.list()) == 1


def test_a_build_without_a_recipe_leaves_the_choice_to_the_builder(api, monkeypatch):
    """As `image build` without --recipe: the recipe named like the sku, else the lab's default."""
    calls = []

    def stopped(*args, **kwargs):
        calls.append((args[3], kwargs["recipe_name"], kwargs["recipe_field"]))
        raise ImageError("build", "stopped by the test")
    monkeypatch.setattr(gallery_routes, "build", stopped)
    r = raw(api, "PUT", "galleries/Debian/images/12/versions/1.0.0",
            json={"location": "local", "properties": {"lab": {"customize": [], "offer": "debian-12"}}})
    op = finished(api, r)
    assert op["status"] == "Failed" and "stopped by the test" in op["error"]["message"]
    assert calls == [("12", None, "properties.lab.recipe")]
