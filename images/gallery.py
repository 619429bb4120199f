"""The local image gallery: immutable versions with checksums, `latest`, exclusions, regions."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controller.core.clock import now_iso
from controller.core.errors import ImageError
from controller.core.procs import owner_alive, process_tag
from controller.core.settings import LabPaths
from controller.core.txn import transaction
from controller.model.versions import LATEST, parse_version

from . import qcow2

DEFAULT_REGION = "local"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")


def check_name(field: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        shown = value if isinstance(value, str) and len(value) <= 80 and value.isprintable() else repr(value)[1:-1][:80]
        raise ImageError(field, f"'{shown}' is not a valid name: 1-80 letters, digits, '.', '-' or '_', "
                                "starting with a letter or digit")
    return value


@dataclass(frozen=True)
class ImageVersion:
    publisher: str
    offer: str
    sku: str
    version: str
    path: Path
    sha256: str
    size_bytes: int
    virtual_size_bytes: int
    source: str
    recipe: str | None
    build_seconds: float | None
    exclude_from_latest: bool
    target_regions: tuple[str, ...]
    published_at: str

    @property
    def urn(self) -> str:
        return f"{self.publisher}:{self.offer}:{self.sku}:{self.version}"

    @property
    def etag(self) -> str:
        """Changes with every write of the version's record (a new file, exclusion, regions)."""
        record = json.dumps([self.publisher, self.offer, self.sku, self.version, str(self.path), self.sha256,
                             self.exclude_from_latest, list(self.target_regions), self.published_at])
        return hashlib.sha256(record.encode()).hexdigest()[:16]

    @property
    def volume_name(self) -> str:
        """The name of this version's copy (its replica) in a host's storage pool."""
        return f"{self.publisher}_{self.offer}_{self.sku}_{self.version}.qcow2".lower()

    def to_json(self) -> dict:
        """Shaped like `az sig image-version list` entries, with `az vm image list`'s urn fields."""
        tags = {"source": self.source}
        if self.recipe:
            tags["recipe"] = self.recipe
        if self.build_seconds is not None:
            tags["buildSeconds"] = f"{self.build_seconds:.1f}"
        return {
            "id": f"/scaleset-lab/images/{self.publisher}/{self.offer}/{self.sku}/versions/{self.version}",
            "name": self.version,
            "type": "Microsoft.Compute/galleries/images/versions",
            "location": DEFAULT_REGION,
            "publisher": self.publisher, "offer": self.offer, "sku": self.sku,
            "version": self.version, "urn": self.urn, "architecture": "x64",
            "provisioningState": "Succeeded",
            "publishingProfile": {
                "excludeFromLatest": self.exclude_from_latest,
                "publishedDate": self.published_at,
                "replicaCount": 1,
                "targetRegions": [{"name": r, "regionalReplicaCount": 1} for r in self.target_regions],
            },
            "storageProfile": {"osDiskImage": {
                "sizeInGb": -(-self.virtual_size_bytes // 1024**3),
                "hostCaching": "ReadWrite",
                "source": {"uri": str(self.path)},
                "sha256": self.sha256,
                "fileSizeBytes": self.size_bytes,
            }},
            "tags": tags,
        }


def _row(r) -> ImageVersion:
    return ImageVersion(
        publisher=r["publisher"], offer=r["offer"], sku=r["sku"], version=r["version"],
        path=Path(r["path"]), sha256=r["sha256"], size_bytes=r["size_bytes"],
        virtual_size_bytes=r["virtual_size_bytes"], source=r["source"], recipe=r["recipe"],
        build_seconds=r["build_seconds"], exclude_from_latest=bool(r["exclude_from_latest"]),
        target_regions=tuple(json.loads(r["target_regions"])), published_at=r["published_at"],
    )


def _regions(regions: list[str] | None) -> list[str]:
    regions = list(regions) if regions else [DEFAULT_REGION]
    for i, r in enumerate(regions):
        check_name(f"targetRegions[{i}]", r)
    return list(dict.fromkeys(regions))


def _always(iv: ImageVersion, region: str) -> bool:
    return True


Expect = Callable[["ImageVersion | None"], None]  # raises unless the version as read may be written
_OWNED = re.compile(r"\.(?:import|build|mmdebstrap)-(\d+)_([^-]+)-|\..*\.(\d+)_([^.]+)\.partial$")


def owned(prefix: str) -> str:
    """A temporary name's prefix carrying this process's tag: `sweep` removes it once we are gone."""
    return f"{prefix}{process_tag().replace(':', '_')}-"


def _remove_tree(path: Path) -> None:
    """rm -r that never crosses into another file system (a mount a killed build left)."""
    top = path.lstat().st_dev
    if not stat.S_ISDIR(path.lstat().st_mode):
        path.unlink(missing_ok=True)
        return
    for parent, dirs, files in os.walk(path, topdown=False):
        for name in files + dirs:
            p = Path(parent) / name
            try:
                st = p.lstat()
                if st.st_dev != top:
                    continue
                p.rmdir() if stat.S_ISDIR(st.st_mode) else p.unlink()
            except OSError:
                pass  # not empty (a mount below) or gone: left
    try:
        path.rmdir()
    except OSError:
        pass


def sweep(*folders: Path) -> list[Path]:
    """Remove what builds and imports of processes that are gone left in `folders` (their
    temporary folders and partial files); what a live process works on stays."""
    removed = []
    for folder in folders:
        try:
            partials = [p for p in folder.glob("*/*/*/.*.partial")  # publisher/offer/sku: not in temporary folders
                        if not any(part.startswith(".") for part in p.relative_to(folder).parts[:-1])]
            entries = list(folder.iterdir()) + partials
        except OSError:
            continue
        for entry in dict.fromkeys(entries):
            m = _OWNED.match(entry.name)
            if m is None:
                continue
            pid, start = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            if owner_alive(f"{pid}:{start}"):
                continue
            _remove_tree(entry)
            removed.append(entry)
    return removed


def _copy_regular(src: Path, dest: Path, field: str) -> None:
    """Copy a regular file (opened once: a FIFO or device is refused, never waited on)."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        raise ImageError(field, f"{src} does not exist or is not a readable regular file", "FileNotFound") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ImageError(field, f"{src} is not a regular file", "FileNotFound")
        with dest.open("wb") as out:
            shutil.copyfileobj(f, out, 4 * 1024 * 1024)


class Gallery:
    """Image files under the lab's gallery folder; their rows in the lab's database (`db`).
    `ready(iv, region)`: whether a version's replication to a target region is complete."""

    def __init__(self, paths: LabPaths, db: sqlite3.Connection,
                 ready: Callable[[ImageVersion, str], bool] = _always) -> None:
        self.paths, self.db, self.ready = paths.ensure(), db, ready

    def list(self, publisher: str | None = None, offer: str | None = None, sku: str | None = None) -> list[ImageVersion]:
        q, args = "SELECT * FROM image_versions WHERE 1=1", []
        for col, val in (("publisher", publisher), ("offer", offer), ("sku", sku)):
            if val is not None:
                q += f" AND {col} = ?"
                args.append(val)
        q += " ORDER BY publisher, offer, sku, major, minor, patch"
        return [_row(r) for r in self.db.execute(q, args)]

    def get(self, publisher: str, offer: str, sku: str, version: str) -> ImageVersion:
        parse_version(version)
        r = self.db.execute("SELECT * FROM image_versions WHERE publisher=? AND offer=? AND sku=? AND version=?",
                            (publisher, offer, sku, version)).fetchone()
        if r is None:
            raise ImageError("imageReference", f"image {publisher}:{offer}:{sku}:{version} not found", "ImageNotFound")
        return _row(r)

    def resolve(self, publisher: str, offer: str, sku: str, version: str, region: str = DEFAULT_REGION) -> ImageVersion:
        """A concrete version, or for `latest` the highest not excluded and replicated to `region`
        (a target region whose replication is complete)."""
        if version.lower() != LATEST:
            iv = self.get(publisher, offer, sku, version)
            if region not in iv.target_regions:
                raise ImageError("imageReference.version",
                                 f"{iv.urn} is not replicated to region '{region}'", "ImageNotReplicated")
            if not self.ready(iv, region):
                raise ImageError("imageReference.version",
                                 f"{iv.urn} is not replicated to region '{region}' yet: its replication there is "
                                 f"under way or failed (scaleset image show --expand ReplicationStatus; "
                                 f"scaleset image replicate)", "ImageNotReplicated")
            return iv
        candidates = [iv for iv in self.list(publisher, offer, sku)
                      if not iv.exclude_from_latest and region in iv.target_regions and self.ready(iv, region)]
        if not candidates:
            raise ImageError("imageReference", f"no version of {publisher}:{offer}:{sku} is available as latest "
                                               f"in region '{region}'", "ImageNotFound")
        return max(candidates, key=lambda iv: parse_version(iv.version))

    def check_new(self, publisher: str, offer: str, sku: str, version: str) -> None:
        """Raise unless the names are valid and the version does not exist yet."""
        check_name("publisher", publisher)
        check_name("offer", offer)
        check_name("sku", sku)
        parse_version(version)
        if self.db.execute("SELECT 1 FROM image_versions WHERE publisher=? AND offer=? AND sku=? AND version=?",
                           (publisher, offer, sku, version)).fetchone():
            raise ImageError("version", f"{publisher}:{offer}:{sku}:{version} already exists; versions are immutable",
                             "Conflict")

    def _dest(self, publisher: str, offer: str, sku: str, version: str) -> Path:
        return self.paths.gallery / publisher.lower() / offer.lower() / sku.lower() / f"{version}.qcow2"

    def publish(self, publisher: str, offer: str, sku: str, version: str, disk: Path, *, source: str,
                recipe: str | None = None, build_seconds: float | None = None,
                target_regions: list[str] | None = None, exclude_from_latest: bool = False) -> ImageVersion:
        """Move a finished qcow2 into the gallery and record it; atomic, never half-published."""
        self.check_new(publisher, offer, sku, version)
        regions = _regions(target_regions)
        info = qcow2.inspect(disk)
        digest = qcow2.sha256_file(disk)
        dest = self._dest(publisher, offer, sku, version)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f"{owned('.' + dest.name + '.')[:-1]}.partial")  # two imports never share it
        shutil.move(str(disk), partial)
        os.chmod(partial, 0o444)
        now = now_iso()
        major, minor, patch = parse_version(version)
        try:
            with transaction(self.db):
                self.check_new(publisher, offer, sku, version)  # again, under the write lock
                self.db.execute(
                    "INSERT INTO image_versions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (publisher, offer, sku, version, major, minor, patch, str(dest), digest,
                     info.actual_size, info.virtual_size, source, recipe, build_seconds, int(exclude_from_latest),
                     json.dumps(regions), now))
                os.replace(partial, dest)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return self.get(publisher, offer, sku, version)

    def import_file(self, publisher: str, offer: str, sku: str, version: str, file: Path,
                    target_regions: list[str] | None = None, exclude_from_latest: bool = False) -> ImageVersion:
        """Copy a self-contained qcow2 into the gallery after checking it."""
        self.check_new(publisher, offer, sku, version)
        _regions(target_regions)
        qcow2.inspect(file, "file")
        with tempfile.TemporaryDirectory(dir=self.paths.gallery, prefix=owned(".import-")) as tmp:
            copy = Path(tmp) / "disk.qcow2"
            _copy_regular(file, copy, "file")  # publish checks the copy again: what is published was checked
            return self.publish(publisher, offer, sku, version, copy, source="imported",
                                target_regions=target_regions, exclude_from_latest=exclude_from_latest)

    def update(self, publisher: str, offer: str, sku: str, version: str, *,
               exclude_from_latest: bool | None = None, target_regions: list[str] | None = None,
               expect: Expect | None = None) -> ImageVersion:
        """Change what Azure lets change on a published version: exclusion and regions; `expect`
        (an If-Match) sees the version as read in the write's transaction."""
        self.get(publisher, offer, sku, version)
        with transaction(self.db):
            if expect is not None:
                expect(self.get(publisher, offer, sku, version))
            if exclude_from_latest is not None:
                self.db.execute("UPDATE image_versions SET exclude_from_latest=? WHERE publisher=? AND offer=? "
                                "AND sku=? AND version=?", (int(exclude_from_latest), publisher, offer, sku, version))
            if target_regions is not None:
                self.db.execute("UPDATE image_versions SET target_regions=? WHERE publisher=? AND offer=? "
                                "AND sku=? AND version=?", (json.dumps(_regions(target_regions)),
                                                             publisher, offer, sku, version))
        return self.get(publisher, offer, sku, version)

    def delete(self, publisher: str, offer: str, sku: str, version: str,
               in_use: set[tuple[str, str, str, str]], expect: Expect | None = None) -> ImageVersion:
        """Remove a version no OS disk is built on (`in_use`: lower-case publisher/offer/sku);
        `expect` sees it as read in the write's transaction."""
        iv = self.get(publisher, offer, sku, version)
        if (publisher.lower(), offer.lower(), sku.lower(), version) in in_use:
            raise ImageError("version", f"{iv.urn} is in use by instances (their OS disks are overlays on it); "
                                        "upgrade or delete them first", "ImageVersionInUse")
        with transaction(self.db):
            if expect is not None:
                iv = self.get(publisher, offer, sku, version)
                expect(iv)
            self.db.execute("DELETE FROM image_versions WHERE publisher=? AND offer=? AND sku=? AND version=?",
                            (publisher, offer, sku, version))
        iv.path.unlink(missing_ok=True)
        return iv

    def verify(self, iv: ImageVersion) -> ImageVersion:
        """Check the file against its recorded sha256 (and that no host file is behind it) before it is used."""
        if not iv.path.is_file():
            raise ImageError("imageReference", f"{iv.urn}: file {iv.path} is missing", "ImageCorrupted")
        problem = qcow2.header_problem(qcow2.read_header(iv.path))
        if problem:  # published before the lab checked for host files behind an image
            raise ImageError("imageReference", f"{iv.urn}: {iv.path} {problem}", "InvalidImageFormat")
        actual = qcow2.sha256_file(iv.path)
        if actual != iv.sha256:
            raise ImageError("imageReference", f"{iv.urn}: sha256 mismatch (recorded {iv.sha256[:12]}..., "
                                               f"file {actual[:12]}...): the file changed since it was published",
                             "ImageCorrupted")
        return iv
