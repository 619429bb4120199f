"""Azure's SDK (azure-mgmt-compute's virtual_machine_images) against the lab's gallery as
marketplace images: publishers, offers, skus and versions of a location as plain arrays in
Azure's shapes, az's `latest` lookup ($orderby=name desc, $top=1, $expand=properties) honouring
excludeFromLatest, and a missing image as 404 NotFound naming the command that builds it."""
from __future__ import annotations

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from controller.model.armid import SUBSCRIPTION_ID

P, O, S = "scaleset-lab", "debian", "debian-12"  # flab's 1.0.0


@pytest.fixture
def images(flab, qcow2_file):
    g = flab.gallery
    g.import_file(P, O, S, "1.10.0", qcow2_file)
    g.import_file(P, O, S, "1.9.0", qcow2_file)
    g.import_file(P, O, S, "2.0.0", qcow2_file, exclude_from_latest=True)
    g.import_file(P, O, "debian-13", "0.1.0", qcow2_file)
    g.import_file("Acme", "tools", "base", "1.0.0", qcow2_file)
    g.import_file("elsewhere", "x", "y", "1.0.0", qcow2_file, target_regions=["west"])
    return flab


@pytest.fixture
def vmi(images, driver):
    from tests.apiserver import serve
    yield from serve(images, driver)


def test_publishers_offers_skus_and_versions_in_azure_shapes(vmi):
    c = vmi.client().virtual_machine_images
    pubs = c.list_publishers("local")
    assert [p.name for p in pubs] == ["Acme", P]  # "elsewhere" is in region west only
    assert pubs[1].id == f"/Subscriptions/{SUBSCRIPTION_ID}/Providers/Microsoft.Compute/Locations/local/Publishers/{P}"
    assert pubs[1].location == "local"
    assert [o.name for o in c.list_offers("local", P.upper())] == [O]
    skus = c.list_skus("local", P, O)
    assert [s.name for s in skus] == [S, "debian-13"]
    assert skus[0].id.endswith(f"/Publishers/{P}/ArtifactTypes/VMImage/Offers/{O}/Skus/{S}")
    versions = c.list("local", P, O, S)
    assert [v.name for v in versions] == ["1.0.0", "1.9.0", "1.10.0"]  # by number; 2.0.0 is excluded from latest
    assert versions[2].id == (f"/Subscriptions/{SUBSCRIPTION_ID}/Providers/Microsoft.Compute/Locations/local/"
                              f"Publishers/{P}/ArtifactTypes/VMImage/Offers/{O}/Skus/{S}/Versions/1.10.0")
    assert [s.name for s in c.list_skus("west", "ELSEWHERE", "x")] == ["y"]


def test_latest_as_az_looks_it_up_and_a_version_shown(vmi):
    c = vmi.client().virtual_machine_images
    top = c.list("local", P, O, S, expand="properties", orderby="name desc", top=1)
    assert [v.name for v in top] == ["1.10.0"] == [vmi_latest(vmi)]
    raw = get(vmi, f"{P}/artifacttypes/vmimage/offers/{O}/skus/{S}/versions",
              {"$expand": "properties", "$orderby": "name desc", "$top": "1"})
    assert raw.status_code == 200 and [v["name"] for v in raw.json()] == ["1.10.0"]  # a plain array, as in Azure
    assert raw.json()[0]["properties"]["osDiskImage"]["operatingSystem"] == "Linux"
    assert [v.name for v in c.list("local", P, O, S, orderby="name asc", top=2)] == ["1.0.0", "1.9.0"]
    for version in ("1.10.0", "2.0.0"):  # an excluded version is still read by its name
        v = c.get("local", P, O, S, version)
        assert v.name == version and v.location == "local"
        props = v.properties
        assert (props.os_disk_image.operating_system, props.hyper_v_generation, props.architecture) == \
            ("Linux", "V1", "x64")
        assert props.data_disk_images == [] and props.automatic_os_upgrade_properties.automatic_os_upgrade_supported
        assert props.image_deprecation_status.image_state == "Active"


def vmi_latest(vmi) -> str:
    return vmi.lab.gallery.resolve(P, O, S, "latest").version


def test_a_missing_image_is_404_naming_the_build_command(vmi):
    c = vmi.client().virtual_machine_images
    with pytest.raises(ResourceNotFoundError) as e:
        c.get("local", P, O, S, "9.9.9")
    assert e.value.error.code == "NotFound"
    assert f"--publisher {P} --offer {O} --sku {S} --version 9.9.9" in e.value.error.message
    with pytest.raises(ResourceNotFoundError) as e:
        c.list("local", P, O, "ubuntu", expand="properties", orderby="name desc", top=1)
    assert f"'{P}:{O}:ubuntu'" in e.value.error.message and "scaleset image build --publisher" in e.value.error.message
    for call in (lambda: c.list_offers("local", "nobody"), lambda: c.list_skus("local", P, "nope"),
                 lambda: c.list("west", P, O, S)):
        with pytest.raises(ResourceNotFoundError):
            call()
    assert c.list_publishers("nowhere") == []


def get(vmi, path: str, query: dict | None = None) -> requests.Response:
    url = f"{vmi.endpoint}/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Compute/locations/local/publishers"
    return requests.get(f"{url}/{path}".rstrip("/"), params={"api-version": "2024-07-01", **(query or {})},
                        verify=str(vmi.ca), timeout=10, headers={"Authorization": f"Bearer {vmi.token()}"})


def test_bad_orderby_and_top_are_400_naming_them(vmi):
    for query, target in (({"$orderby": "size"}, "$orderby"), ({"$top": "0"}, "$top"), ({"$top": "x"}, "$top")):
        r = get(vmi, "", query)
        assert r.status_code == 400 and r.json()["error"]["target"] == target
    with pytest.raises(HttpResponseError):
        vmi.client().virtual_machine_images.list("local", P, O, S, top=-1)


def gallery_id(image: str = S, version: str | None = None, group: str = "any-group") -> str:
    gid = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{group}/providers/Microsoft.Compute/galleries/{P}/" \
          f"images/{image}"
    return gid + (f"/versions/{version}" if version else "")


def stored_ref(lab) -> tuple:
    ref = lab.models.get("web").properties.virtualMachineProfile.storageProfile.imageReference
    return ref.publisher, ref.offer, ref.sku, ref.version


def test_an_image_reference_id_of_a_gallery_image_or_version_is_its_urn(vmi):
    from azure.mgmt.compute import models as m

    from tests.test_api_sdk import sdk_model
    client = vmi.client()
    body = sdk_model()
    storage = body.properties.virtual_machine_profile.storage_profile
    storage.image_reference = m.ImageReference(id=gallery_id("DEBIAN-12"))
    created = client.virtual_machine_scale_sets.begin_create_or_update("rg", "web", body).result()
    assert created.properties.virtual_machine_profile.storage_profile.image_reference.id == gallery_id("DEBIAN-12")
    assert stored_ref(vmi.lab) == (P, O, S, "latest")  # an image id without a version is latest
    assert vmi.lab.resolve_image(vmi.lab.models.get("web")).version == "1.10.0"
    patch = m.VirtualMachineScaleSetUpdate(properties=m.VirtualMachineScaleSetUpdateProperties(
        virtual_machine_profile=m.VirtualMachineScaleSetUpdateVMProfile(
            storage_profile=m.VirtualMachineScaleSetUpdateStorageProfile(
                image_reference=m.ImageReference(id=gallery_id("debian-13", "0.1.0"))))))
    client.virtual_machine_scale_sets.begin_update("rg", "web", patch).result()
    assert stored_ref(vmi.lab) == (P, O, "debian-13", "0.1.0")  # the offer is the gallery's, stored with it


@pytest.mark.parametrize("ref_id, code, words", [
    (gallery_id("ubuntu"), "GalleryImageNotFound", f"scaleset image build --publisher {P} --offer OFFER --sku ubuntu"),
    (gallery_id(S, "1.0"), "InvalidImageVersion", "imageReference.version"),
    (gallery_id(S).replace("/galleries/", "/gallerys/"), "InvalidParameter", "imageReference.id"),
])
def test_a_bad_or_missing_image_id_is_refused_naming_it(images, ref_id, code, words):
    from controller.core.errors import ModelError
    from controller.ops.commands import create_model
    from tests.test_rolling import model
    doc = model()
    doc["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"] = {"id": ref_id}
    with pytest.raises(ModelError) as e:
        create_model(images, doc)
    assert e.value.code == code and words in f"{e.value.field} {e.value.reason}"
    assert images.models.list() == []
