import json
import os
import subprocess

import pytest

from controller.core.errors import ImageError
from controller.state.db import connect
from images.gallery import Gallery
from tests.helpers import make_qcow2

P, O, S = "Contoso", "debian", "debian-12"


@pytest.fixture
def gallery(lab):
    return Gallery(lab, connect(lab.db))


def publish(gallery, tmp_path, version, regions=None):
    disk = make_qcow2(tmp_path / f"build-{version}.qcow2", data=version.encode() * 100)
    return gallery.publish(P, O, S, version, disk, source="built", recipe="debian-12",
                           build_seconds=1.5, target_regions=regions)


def test_latest_is_highest_numeric_version(gallery, tmp_path):
    for v in ["1.9.0", "1.10.0", "1.2.0"]:
        publish(gallery, tmp_path, v)
    assert gallery.resolve(P, O, S, "latest").version == "1.10.0"
    assert gallery.resolve(P, O, S, "LATEST").version == "1.10.0"
    assert [iv.version for iv in gallery.list(P, O, S)] == ["1.2.0", "1.9.0", "1.10.0"]


def test_excluded_from_latest_is_skipped_and_can_come_back(gallery, tmp_path):
    publish(gallery, tmp_path, "1.0.0")
    publish(gallery, tmp_path, "2.0.0")
    gallery.update(P, O, S, "2.0.0", exclude_from_latest=True)
    assert gallery.resolve(P, O, S, "latest").version == "1.0.0"
    # still usable by its explicit version
    assert gallery.resolve(P, O, S, "2.0.0").version == "2.0.0"
    gallery.update(P, O, S, "2.0.0", exclude_from_latest=False)
    assert gallery.resolve(P, O, S, "latest").version == "2.0.0"


def test_version_not_replicated_to_region_is_never_resolved_there(gallery, tmp_path):
    publish(gallery, tmp_path, "1.0.0", regions=["local", "west"])
    publish(gallery, tmp_path, "1.1.0", regions=["local"])
    assert gallery.resolve(P, O, S, "latest", region="local").version == "1.1.0"
    assert gallery.resolve(P, O, S, "latest", region="west").version == "1.0.0"
    with pytest.raises(ImageError) as err:
        gallery.resolve(P, O, S, "1.1.0", region="west")
    assert err.value.code == "ImageNotReplicated"
    with pytest.raises(ImageError):
        gallery.resolve(P, O, S, "latest", region="east")
    gallery.update(P, O, S, "1.1.0", target_regions=["local", "west"])
    assert gallery.resolve(P, O, S, "latest", region="west").version == "1.1.0"


def test_all_excluded_means_no_latest(gallery, tmp_path):
    publish(gallery, tmp_path, "1.0.0")
    gallery.update(P, O, S, "1.0.0", exclude_from_latest=True)
    with pytest.raises(ImageError) as err:
        gallery.resolve(P, O, S, "latest")
    assert err.value.code == "ImageNotFound"


def test_published_file_is_read_only_and_checksum_verified(gallery, tmp_path):
    iv = publish(gallery, tmp_path, "1.0.0")
    assert iv.path.is_file() and oct(iv.path.stat().st_mode & 0o777) == "0o444"
    assert gallery.verify(iv) == iv
    os.chmod(iv.path, 0o644)
    with iv.path.open("r+b") as f:  # silent corruption
        f.seek(iv.path.stat().st_size - 10)
        f.write(b"corrupted!")
    with pytest.raises(ImageError) as err:
        gallery.verify(iv)
    assert err.value.code == "ImageCorrupted" and "sha256" in str(err.value)


def test_versions_are_immutable(gallery, tmp_path):
    publish(gallery, tmp_path, "1.0.0")
    before = gallery.get(P, O, S, "1.0.0")
    with pytest.raises(ImageError) as err:
        publish(gallery, tmp_path, "1.0.0")
    assert err.value.code == "Conflict" and err.value.field == "version"
    assert gallery.get(P, O, S, "1.0.0").sha256 == before.sha256


def test_import_copies_checks_and_lists_in_az_shape(gallery, qcow2_file):
    iv = gallery.import_file(P, O, S, "2016.127.20180613", qcow2_file)
    assert qcow2_file.exists(), "import must not consume the user's file"
    entry = iv.to_json()
    assert entry["name"] == "2016.127.20180613"
    assert entry["urn"] == f"{P}:{O}:{S}:2016.127.20180613"
    assert entry["publishingProfile"]["excludeFromLatest"] is False
    assert entry["publishingProfile"]["targetRegions"] == [{"name": "local", "regionalReplicaCount": 1}]
    assert entry["storageProfile"]["osDiskImage"]["sha256"] == iv.sha256
    assert entry["type"] == "Microsoft.Compute/galleries/images/versions"
    assert entry["tags"]["source"] == "imported"


def _no_partial_files(gallery):
    leftovers = [p for p in gallery.paths.gallery.rglob("*") if p.is_file()]
    return leftovers == []


def test_import_rejects_a_file_that_is_not_qcow2(gallery, tmp_path):
    bogus = tmp_path / "disk.qcow2"
    bogus.write_bytes(b"this is not a disk image" * 100)
    with pytest.raises(ImageError) as err:
        gallery.import_file(P, O, S, "1.0.0", bogus)
    assert err.value.field == "file" and "not a qcow2" in err.value.reason
    assert gallery.list() == [] and _no_partial_files(gallery)


def test_import_rejects_a_raw_disk(gallery, tmp_path):
    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(raw), "16M"], check=True)
    with pytest.raises(ImageError):
        gallery.import_file(P, O, S, "1.0.0", raw)
    assert gallery.list() == []


def test_import_rejects_a_truncated_qcow2(gallery, qcow2_file):
    size = qcow2_file.stat().st_size
    with qcow2_file.open("r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(ImageError) as err:
        gallery.import_file(P, O, S, "1.0.0", qcow2_file)
    assert err.value.field == "file" and ("truncated" in err.value.reason or "damaged" in err.value.reason)
    assert gallery.list() == [] and _no_partial_files(gallery)


def test_import_rejects_a_qcow2_with_a_backing_file(gallery, qcow2_file, tmp_path):
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(qcow2_file),
                    str(overlay)], check=True)
    with pytest.raises(ImageError) as err:
        gallery.import_file(P, O, S, "1.0.0", overlay)
    assert "backing file" in err.value.reason


def test_import_rejects_missing_file_existing_and_malformed_versions(gallery, qcow2_file, tmp_path):
    with pytest.raises(ImageError) as err:
        gallery.import_file(P, O, S, "1.0.0", tmp_path / "nope.qcow2")
    assert err.value.field == "file"
    with pytest.raises(ImageError) as err:
        gallery.import_file(P, O, S, "1.0", qcow2_file)
    assert err.value.field == "version"
    with pytest.raises(ImageError) as err:
        gallery.import_file("bad publisher!", O, S, "1.0.0", qcow2_file)
    assert err.value.field == "publisher"
    gallery.import_file(P, O, S, "1.0.0", qcow2_file)
    with pytest.raises(ImageError) as err:
        gallery.import_file(P, O, S, "1.0.0", qcow2_file)
    assert err.value.code == "Conflict"
    assert len(gallery.list()) == 1


def test_unknown_image_and_update_of_missing_version(gallery):
    with pytest.raises(ImageError) as err:
        gallery.get(P, O, S, "9.9.9")
    assert err.value.code == "ImageNotFound"
    with pytest.raises(ImageError):
        gallery.update(P, O, S, "9.9.9", exclude_from_latest=True)


def test_names_are_case_insensitive_like_azure(gallery, tmp_path):
    publish(gallery, tmp_path, "1.0.0")
    assert gallery.resolve("contoso", "DEBIAN", "Debian-12", "latest").version == "1.0.0"


def test_state_survives_a_new_gallery_object(lab, tmp_path):
    publish(Gallery(lab, connect(lab.db)), tmp_path, "3.0.0")
    again = Gallery(lab, connect(lab.db))
    assert json.dumps(again.get(P, O, S, "3.0.0").to_json())
