"""A rehearsal scenario (YAML): image versions, a scale-set model, ordered steps.

Every key is checked here, before anything is built or booted; an error names the file, the
line and the key (`demo.yaml:12 steps[3].expectUpgrade.timeout: ...`).
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controller.core.errors import LabError
from controller.model.jsonmap import parse_duration
from controller.model.scaleset import parse as parse_model
from controller.model.versions import parse_version
from images import recipe as recipes

DEFAULT_TIMEOUT = "PT10M"
STATUSES = ("Completed", "Faulted", "Cancelled")
HEALTH_STATES = ("Healthy", "Unhealthy", "Unknown", "Initializing")


class ScenarioError(LabError):
    """A scenario file that does not read or does not check."""


@dataclass
class ImageSpec:
    version: str
    customize: list[Path] = field(default_factory=list)  # build from the recipe with these scripts
    source: Path | None = None  # or import this qcow2
    recipe: str | None = None
    held: bool = False  # built excluded from latest; a `publish` step releases it


@dataclass
class Step:
    kind: str
    args: dict[str, Any]
    index: int
    line: int
    title: str
    timeout: float | None = None

    def get(self, key: str, default: Any = None) -> Any:
        return self.args.get(key, default)


@dataclass
class Scenario:
    name: str
    path: Path
    publisher: str
    offer: str
    sku: str
    images: list[ImageSpec]
    model: dict
    steps: list[Step]

    @property
    def scale_set(self) -> str:
        return self.model["name"]


# Each step kind: its keys -> (type, required). "timeout" is added to every expectation.
_IDS = (list, False)
SCHEMA: dict[str, dict[str, tuple[type | tuple, bool]]] = {
    "create": {},
    "writeMarkers": {"lun": (int, False)},
    "expectMarkers": {"lun": (int, False)},
    "publish": {"version": (str, True)},
    "startUpgrade": {},
    "expectUpgrade": {"version": (str, False), "status": (str, True), "errorCode": (str, False),
                      "rolledBack": (int, False), "rollbackFailed": (int, False), "failed": (int, False),
                      "startedBy": (str, False)},
    "reimage": {"instanceIds": _IDS},
    "updateInstances": {"instanceIds": _IDS, "updateDomain": (int, False)},
    "updateModel": {"set": (list, True)},
    "setExtension": {"name": (str, True), "properties": (dict, True)},
    "putFile": {"file": (str, True), "name": (str, False)},
    "sleep": {"seconds": ((int, float), True)},
    "scale": {"capacity": (int, True)},
    "runCommand": {"instanceId": ((int, str), True), "script": (str, True), "expectExitCode": (int, False),
                   "expectOutput": (str, False)},
    "expectHealth": {"state": (str, True), "instanceIds": _IDS},
    "expectVersion": {"version": (str, True), "instanceIds": _IDS},
    "expectModelApplied": {"applied": (bool, True), "instanceIds": _IDS},
    "killController": {"duringBatch": (int, False)},
    "stopInstance": {"instanceIds": (list, True)},
    "makeUnhealthy": {"instanceIds": (list, True)},
}
BEFORE_CREATE = {"putFile", "sleep", "publish"}
FILE_URL = re.compile(r"\{\{\s*fileUrl\s+(\S+)\s+(\S+)\s*\}\}")  # a file-server URL, its token expiring then
BASE64_FILE = re.compile(r"\{\{\s*base64File\s+(\S+)\s*\}\}")  # a file next to the scenario, in base64
EXPECTATIONS = {"expectMarkers", "expectUpgrade", "runCommand", "expectHealth", "expectVersion",
                "expectModelApplied", "killController", "create"}


class _Lines:
    """Line numbers of the YAML nodes, by key path (`steps[2].expectUpgrade.status`)."""

    def __init__(self, node: yaml.Node | None) -> None:
        self.lines: dict[str, int] = {}
        if node is not None:
            self._walk(node, "")

    def _walk(self, node: yaml.Node, path: str) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = f"{path}.{k.value}" if path else str(k.value)
                self._walk(v, key)
                self.lines[key] = k.start_mark.line + 1  # a key's own line, not its value's
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                self._walk(v, f"{path}[{i}]")

    def of(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", path)
        return None


class _Checker:
    def __init__(self, path: Path, lines: _Lines) -> None:
        self.path, self.lines = path, lines

    def fail(self, key: str, reason: str) -> ScenarioError:
        line = self.lines.of(key)
        where = f"{self.path.name}:{line}" if line else self.path.name
        return ScenarioError(f"{where} {key}" if key else where, reason)

    def mapping(self, value: Any, key: str, allowed: set[str] | None = None) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, "must be a mapping")
        for k in value:
            if allowed is not None and k not in allowed:
                raise self.fail(f"{key}.{k}" if key else str(k), f"unknown key (known: {', '.join(sorted(allowed))})")
        return value

    def typed(self, value: Any, key: str, kind: type | tuple) -> Any:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join({"str": "a string", "int": "an integer", "float": "a number", "list": "a list",
                                 "dict": "a mapping", "bool": "true or false"}[k.__name__] for k in kinds)
            raise self.fail(key, f"must be {names}")
        return value

    def file(self, text: Any, key: str) -> Path:
        p = (self.path.parent / self.typed(text, key, str)).resolve()
        if not p.is_file():
            raise self.fail(key, f"{p} is not a file")
        return p

    def duration(self, text: Any, key: str) -> float:
        try:
            return parse_duration(text, key)
        except LabError as exc:
            raise self.fail(key, exc.reason) from None

    def version(self, text: Any, key: str) -> str:
        try:
            parse_version(self.typed(text, key, str))
        except LabError as exc:
            raise self.fail(key, exc.reason) from None
        return text


def load(path: Path) -> Scenario:
    """Read and check a scenario file (ScenarioError naming the line and key)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(str(path), exc.strerror or str(exc), "FileNotFound") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}" if mark else path.name
        raise ScenarioError(where, f"not YAML: {getattr(exc, 'problem', None) or exc}") from None
    c = _Checker(path, _Lines(node))
    top = c.mapping(data, "", {"name", "images", "scaleSet", "scaleSetFile", "steps"})
    for key in ("name", "images", "steps"):
        if key not in top:
            raise c.fail("", f"'{key}' is required")
    name = c.typed(top["name"], "name", str)
    model = _model(c, top)
    ref = model["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"]
    steps = [_step(c, s, i) for i, s in enumerate(c.typed(top["steps"], "steps", list))]
    held = {s.args["version"] for s in steps if s.kind == "publish"}
    images = [_image(c, v, f"images[{i}]", held) for i, v in enumerate(c.typed(top["images"], "images", list))]
    known = {im.version for im in images}
    for s in steps:
        v = s.get("version")
        if s.kind == "publish" and v not in known:
            raise c.fail(f"steps[{s.index}].publish.version", f"{v} is not one of the images")
    if len(known) != len(images):
        raise c.fail("images", "a version is listed twice")
    creates = [st.index for st in steps if st.kind == "create"]
    if len(creates) != 1:
        raise c.fail("steps", "give exactly one 'create' step")
    for st in steps[:creates[0]]:
        if st.kind not in BEFORE_CREATE:
            raise c.fail(f"steps[{st.index}].{st.kind}", "comes before the 'create' step: only "
                                                          f"{', '.join(sorted(BEFORE_CREATE))} may")
    return Scenario(name, path, ref["publisher"], ref["offer"], ref["sku"], images, model, steps)


def _model(c: _Checker, top: dict) -> dict:
    if ("scaleSet" in top) == ("scaleSetFile" in top):
        raise c.fail("scaleSet", "give exactly one of scaleSet (inline) or scaleSetFile")
    if "scaleSet" in top:
        key, doc = "scaleSet", c.mapping(top["scaleSet"], "scaleSet")
    else:
        key, f = "scaleSetFile", c.file(top["scaleSetFile"], "scaleSetFile")
        try:
            doc = json.loads(f.read_text()) if f.suffix == ".json" else yaml.safe_load(f.read_text())
        except (ValueError, yaml.YAMLError) as exc:
            raise c.fail(key, f"{f.name} does not read: {exc}") from None
    doc = _static(c, doc, key)
    try:
        parse_model(_placeholder_urls(doc))
    except LabError as exc:
        if key == "scaleSet" and exc.field.startswith("$"):  # the JSON path, in the file
            raise c.fail("scaleSet" + exc.field[1:], exc.reason) from None
        raise c.fail(key, f"{exc.field}: {exc.reason}") from None
    return doc


def _static(c: _Checker, value: Any, key: str) -> Any:
    """`{{ base64File PATH }}` replaced now; each `{{ fileUrl NAME DURATION }}` checked (made at run time)."""
    if isinstance(value, str):
        for m in FILE_URL.finditer(value):
            c.duration(m.group(2), key)
        return BASE64_FILE.sub(lambda m: base64.b64encode(c.file(m.group(1), key).read_bytes()).decode(), value)
    if isinstance(value, list):
        return [_static(c, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _static(c, v, f"{key}.{k}") for k, v in value.items()}
    return value


def _placeholder_urls(value: Any) -> Any:
    """A copy in which file-server URLs look as they will (for the model's checks)."""
    if isinstance(value, str):
        return FILE_URL.sub(lambda m: f"http://10.0.2.2:1/files/{m.group(1)}?se=0&sig=0", value)
    if isinstance(value, list):
        return [_placeholder_urls(v) for v in value]
    if isinstance(value, dict):
        return {k: _placeholder_urls(v) for k, v in value.items()}
    return value


def _image(c: _Checker, value: Any, key: str, held: set[str]) -> ImageSpec:
    img = c.mapping(value, key, {"version", "customize", "import", "recipe"})
    if "version" not in img:
        raise c.fail(key, "'version' is required")
    version = c.version(img["version"], f"{key}.version")
    if "import" in img and ("customize" in img or "recipe" in img):
        raise c.fail(f"{key}.import", "an imported version has no recipe or customize scripts")
    scripts = [c.file(s, f"{key}.customize[{i}]") for i, s in enumerate(c.typed(img.get("customize", []),
                                                                             f"{key}.customize", list))]
    source = c.file(img["import"], f"{key}.import") if "import" in img else None
    recipe = c.typed(img["recipe"], f"{key}.recipe", str) if "recipe" in img else None
    if recipe is not None and recipe not in recipes.available():
        raise c.fail(f"{key}.recipe", f"is not a recipe (known recipes: {', '.join(recipes.available())})")
    return ImageSpec(version, scripts, source, recipe, held=version in held)


def _step(c: _Checker, value: Any, i: int) -> Step:
    key = f"steps[{i}]"
    item = c.mapping(value, key)
    kinds = [k for k in item if k != "name"]
    if len(kinds) != 1:
        raise c.fail(key, f"a step is one of {', '.join(SCHEMA)} (with an optional name); got {kinds or 'none'}")
    kind = kinds[0]
    if kind not in SCHEMA:
        raise c.fail(f"{key}.{kind}", f"unknown step (known: {', '.join(SCHEMA)})")
    spec = SCHEMA[kind]
    raw = item[kind]
    if kind == "publish" and isinstance(raw, str):
        raw = {"version": raw}
    args = dict(c.mapping(raw if raw is not None else {}, f"{key}.{kind}", set(spec) | {"timeout"}))
    base = f"{key}.{kind}"
    for k, (typ, required) in spec.items():
        if k in args:
            c.typed(args[k], f"{base}.{k}", typ)
        elif required:
            raise c.fail(base, f"'{k}' is required")
    _check_values(c, kind, args, base)
    args = _static(c, args, base)
    timeout = c.duration(args.pop("timeout", DEFAULT_TIMEOUT), f"{base}.timeout")
    title = c.typed(item["name"], f"{key}.name", str) if "name" in item else _title(kind, args)
    return Step(kind, args, i, c.lines.of(key) or 0, title, timeout)


def _check_values(c: _Checker, kind: str, args: dict, base: str) -> None:
    if "version" in args:
        c.version(args["version"], f"{base}.version")
    if kind == "expectUpgrade" and args["status"] not in STATUSES:
        raise c.fail(f"{base}.status", f"must be one of {', '.join(STATUSES)}")
    if kind == "expectHealth" and args["state"] not in HEALTH_STATES:
        raise c.fail(f"{base}.state", f"must be one of {', '.join(HEALTH_STATES)}")
    if kind == "updateInstances" and ("instanceIds" in args) == ("updateDomain" in args):
        raise c.fail(base, "give exactly one of instanceIds or updateDomain")
    for k in ("instanceIds",):
        for j, v in enumerate(args.get(k) or []):
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0 or v == "*"):
                raise c.fail(f"{base}.{k}[{j}]", "must be an instance id (a number) or '*'")
    if kind == "updateModel":
        for j, v in enumerate(args["set"]):
            if not isinstance(v, str) or "=" not in v:
                raise c.fail(f"{base}.set[{j}]", "must be PATH=VALUE")
    for k in ("capacity", "seconds", "lun", "duringBatch"):
        if k in args and args[k] < (1 if k == "duringBatch" else 0):
            raise c.fail(f"{base}.{k}", "must not be negative" if k != "duringBatch" else "must be at least 1")


def _title(kind: str, args: dict) -> str:
    """A short name for the step: never the values of settings (they may hold secrets)."""
    shown = {k: v for k, v in args.items() if k in ("version", "status", "errorCode", "state", "capacity",
                                                    "instanceIds", "updateDomain", "instanceId", "name",
                                                    "applied", "duringBatch", "seconds", "lun")}
    return kind + (" " + " ".join(f"{k}={v}" for k, v in shown.items()) if shown else "")
