"""Hostile requests for every route of the API (tests/test_api_hostile.py), each with the answer
issue 27 demands: a 4xx at once in ARM's error shape (401 for auth, 404/405 for routes and
methods), never a 2xx and never a 5xx, and the lab unchanged. Paths and bodies may carry
`{tmp}` (a folder of test files) and `{home}` (the lab's home), filled in by the test."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from controller.model.armid import SUBSCRIPTION_ID as SUB

V = "2024-07-01"
ARM = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute"
SETS = ARM + "/virtualMachineScaleSets"
WEB = SETS + "/web"
VMS = WEB + "/virtualMachines"
VM0 = VMS + "/0"
OPS = f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/local/operations"
GALS = ARM + "/galleries"
GAL = GALS + "/scaleset-lab"
IMG = GAL + "/images/debian-12"
VERS = IMG + "/versions"
LAB = "/lab/api"
NOBODY = object()
FOUR = "4xx"


@dataclass(frozen=True)
class Model:
    """A full, valid scale-set model (the test's own) for `web` or a new set, with `capacity`
    (bytes: a JSON number as written, which Python's json cannot write: 1e400, 1e-400)."""
    target: str  # web | new
    capacity: Any = 2
AUTH_CODES = ("AuthenticationFailed", "InvalidAuthenticationToken", "ExpiredAuthenticationToken")


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    body: Any = NOBODY  # a JSON value (sent as JSON), or bytes (sent as they are)
    status: int | tuple[int, ...] | str = FOUR  # one status, some, or "4xx"
    code: str | tuple[str, ...] | None = None  # the error.code the issue (or Azure) fixes
    target: str | None = None  # a part of error.target the answer must name
    auth: str = "ok"  # ok | none | garbage | expired | wrongkey | basic
    query: dict[str, str] | None = None  # None: just api-version
    headers: dict[str, str] = field(default_factory=dict)


# Every route: (method, path, a valid-looking body or NOBODY).
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", WEB, NOBODY), ("PUT", WEB, {"location": "local"}), ("PATCH", WEB, {"tags": {}}), ("DELETE", WEB, NOBODY),
    ("GET", SETS, NOBODY), ("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachineScaleSets", NOBODY),
    ("POST", WEB + "/start", NOBODY), ("POST", WEB + "/powerOff", NOBODY), ("POST", WEB + "/restart", NOBODY),
    ("POST", WEB + "/reimage", NOBODY), ("POST", WEB + "/reimageall", NOBODY),
    ("POST", WEB + "/manualupgrade", {"instanceIds": ["0"]}), ("POST", WEB + "/osRollingUpgrade", NOBODY),
    ("POST", WEB + "/rollingUpgrades/cancel", NOBODY), ("GET", WEB + "/rollingUpgrades/latest", NOBODY),
    ("GET", WEB + "/osUpgradeHistory", NOBODY), ("GET", WEB + "/instanceView", NOBODY),
    ("GET", OPS + "/0123abcd", NOBODY),
    ("GET", VMS, NOBODY), ("GET", VM0, NOBODY), ("PUT", VM0, {"properties": {}}), ("PATCH", VM0, {"properties": {}}),
    ("GET", VM0 + "/instanceView", NOBODY), ("POST", VM0 + "/start", NOBODY), ("POST", VM0 + "/powerOff", NOBODY),
    ("POST", VM0 + "/restart", NOBODY), ("POST", VM0 + "/reimage", NOBODY),
    ("POST", VM0 + "/runCommand", {"commandId": "RunShellScript", "script": ["true"]}),
    ("GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/galleries", NOBODY), ("GET", GALS, NOBODY),
    ("GET", GAL, NOBODY), ("GET", GAL + "/images", NOBODY), ("GET", IMG, NOBODY), ("GET", VERS, NOBODY),
    ("GET", VERS + "/1.0.0", NOBODY), ("PUT", VERS + "/1.0.0", {"properties": {}}),
    ("PATCH", VERS + "/1.0.0", {"properties": {}}), ("DELETE", VERS + "/1.0.0", NOBODY),
    ("GET", "/subscriptions", NOBODY), ("GET", f"/subscriptions/{SUB}", NOBODY), ("GET", "/tenants", NOBODY),
    ("GET", f"/subscriptions/{SUB}/resourceGroups", NOBODY),
    ("GET", f"/subscriptions/{SUB}/resourceGroups/{RG}", NOBODY),
    ("PUT", f"/subscriptions/{SUB}/resourceGroups/{RG}", {"location": "local"}),
]
WEB_JSON = [("GET", LAB + "/lab"), ("GET", LAB + "/scalesets/web"), ("GET", LAB + "/scalesets/web/instances/0"),
            ("POST", LAB + "/scalesets/web/rollingUpgrade/start"),
            ("POST", LAB + "/scalesets/web/rollingUpgrade/cancel"),
            ("POST", LAB + "/scalesets/web/updateDomains/0/upgrade"),
            ("POST", LAB + "/scalesets/web/instances/0/reimage"),
            ("POST", LAB + "/images/scaleset-lab/debian/debian-12/1.0.0/excludeFromLatest")]
AUTHS = ("none", "garbage", "expired", "wrongkey", "basic")


def _slug(path: str) -> str:
    tail = path.replace(ARM, "arm").replace(OPS, "ops").replace(f"/subscriptions/{SUB}", "sub")
    tail = tail.strip("/").replace("/", ".")
    return tail.replace("virtualMachineScaleSets", "vmss").replace("virtualMachines", "vms")


def auth_cases() -> list[Case]:
    out = []
    for n, (method, path, body) in enumerate(ROUTES):
        for kind in AUTHS if n == 0 else (AUTHS[n % len(AUTHS)],):
            out.append(Case(f"auth-{kind}-{method}-{_slug(path)}", method, path, body, 401, AUTH_CODES, auth=kind))
    for method, path in WEB_JSON:  # the web view's JSON routes take a bearer token or the session cookie
        out.append(Case(f"auth-garbage-{method}-{_slug(path)}", method, path, NOBODY, 401, auth="garbage"))
        out.append(Case(f"auth-none-{method}-{_slug(path)}", method, path, NOBODY, 401, auth="none"))
    out.append(Case("auth-identity-garbage", "GET", "/identity/not.a.token/metadata/identity/oauth2/token", NOBODY, 401,
                    query={"resource": "https://management.azure.com/"}))
    out.append(Case("auth-identity-traversal", "GET", "/identity/..%2f..%2fstate.db/metadata/identity/oauth2/token",
                    NOBODY, (401, 404), query={}))
    return out


def api_version_cases() -> list[Case]:
    out = [Case(f"api-version-missing-{m}-{_slug(p)}", m, p, b, 400, "MissingApiVersionParameter", query={})
           for m, p, b in ROUTES]
    bad = {"empty": "", "garbage": "garbage", "superscript": "²", "long": "2" * 5000, "nul": "2024-07-01\x00",
           "quote": "2024-07-01'--", "space": " "}
    # reads only, none asking a guest: a wrongly accepted write would start an operation
    reads = [(m, p) for m, p, _ in ROUTES if m == "GET" and not p.endswith("/instanceView")]
    for n, (name, value) in enumerate(bad.items()):
        method, path = reads[(3 * n) % len(reads)]
        out.append(Case(f"api-version-{name}-{method}-{_slug(path)}", method, path, NOBODY, 400,
                        query={"api-version": value}))
    return out


def route_cases() -> list[Case]:
    unknown = [SETS + "/web/bogus", ARM + "/virtualMachines", ARM + "/disks/d", WEB + "/virtualMachines/0/bogus",
               "/subscriptions/" + SUB + "/bogus", "/nope", "/lab/api/nope", VERS + "/1.0.0/bogus", ARM,
               "/" + "a/" * 300,
               WEB + "/rollingUpgrades", OPS, "/%2e%2e/%2e%2e/etc/passwd"]
    out = [Case(f"route-unknown-{n}", "GET", p, NOBODY, 404) for n, p in enumerate(unknown)]
    wrong = [("POST", SETS), ("PATCH", SETS), ("DELETE", SETS), ("POST", WEB), ("PUT", WEB + "/start"),
             ("GET", WEB + "/restart"), ("DELETE", VMS), ("POST", VM0), ("GET", VM0 + "/runCommand"),
             ("PUT", OPS + "/x"),
             ("POST", VERS), ("DELETE", GAL), ("PUT", IMG), ("DELETE", "/subscriptions"), ("PATCH", "/tenants"),
             ("DELETE", f"/subscriptions/{SUB}/resourceGroups/{RG}"), ("PUT", WEB + "/instanceView"),
             ("POST", WEB + "/osUpgradeHistory"), ("DELETE", LAB + "/lab"), ("PUT", LAB + "/scalesets/web")]
    out += [Case(f"method-{m}-{_slug(p)}", m, p, NOBODY, 405, "MethodNotAllowed") for m, p in wrong]
    return out


BAD_JSON: dict[str, bytes] = {
    "truncated": b'{"location": ', "trailing": b'{"a": 1} x', "not-utf8": b'{"a": "\xff\xfe"}',
    "duplicate-keys": b'{"sku": {}, "sku": {}}', "nan": b'{"sku": {"capacity": NaN}}',
    "infinity": b'{"sku": {"capacity": Infinity}}', "deep": b"[" * 100_000 + b"]" * 100_000,
    "huge-int": b'{"sku": {"capacity": ' + b"9" * 5000 + b"}}", "bom-garbage": b"\xef\xbb\xbf\x00\x00",
}
WRITES = [("PUT", WEB), ("PATCH", WEB), ("PUT", VM0), ("PATCH", VM0), ("POST", WEB + "/reimage"),
          ("POST", WEB + "/manualupgrade"), ("POST", VM0 + "/runCommand"), ("PUT", VERS + "/2.0.0"),
          ("PATCH", VERS + "/1.0.0"), ("POST", LAB + "/images/scaleset-lab/debian/debian-12/1.0.0/excludeFromLatest")]


def json_cases() -> list[Case]:
    out = []
    for n, (name, raw) in enumerate(BAD_JSON.items()):
        for method, path in (WRITES[n % len(WRITES)], WRITES[(n + 3) % len(WRITES)]):
            out.append(Case(f"json-{name}-{method}-{_slug(path)}", method, path, raw, 400,
                            headers={"Content-Type": "application/json"}))
    for name, value in {"string": "web", "list": [1, 2], "number": 5, "null-top": None, "true": True}.items():
        for method, path in (("PUT", WEB), ("PATCH", WEB), ("PUT", VERS + "/2.0.3"), ("POST", VM0 + "/runCommand")):
            out.append(Case(f"type-{name}-{method}-{_slug(path)}", method, path, value, 400))
    for name, ctype, raw in (("form", "application/x-www-form-urlencoded", b"sku.capacity=5"),
                             ("multipart", "multipart/form-data; boundary=x", b"--x\r\n\r\nsku\r\n--x--"),
                             ("xml", "application/xml", b"<sku><capacity>5</capacity></sku>"),
                             ("plain", "text/plain", b"capacity=5")):
        for method, path in (("PUT", WEB), ("PATCH", WEB), ("PUT", VERS + "/2.0.1")):
            out.append(Case(f"content-type-{name}-{method}-{_slug(path)}", method, path, raw, (400, 415),
                            headers={"Content-Type": ctype}))
    big = b'{"tags": {"a": "' + b"x" * (3 << 20) + b'"}}'
    for method, path in (("PUT", WEB), ("PATCH", WEB), ("PUT", VERS + "/2.0.2"), ("POST", VM0 + "/runCommand")):
        out.append(Case(f"oversized-{method}-{_slug(path)}", method, path, big, 413, "RequestEntityTooLarge",
                        headers={"Content-Type": "application/json"}))
    out.append(Case("empty-body-PATCH-web", "PATCH", WEB, b"", 400, target="body"))
    out.append(Case("empty-body-PUT-web", "PUT", WEB, b"", 400, target="body"))
    return out


CAPACITIES: dict[str, Any] = {"five": "five", "true": True, "false": False, "1.5": 1.5, "-1": -1, "1001": 1001,
                              "1e400": b"1e400", "-1e400": b"-1e400", "1e-400": b"1e-400", "1e9": b"1e9",
                              "string-1001": "1001", "string-1.5": "1.5", "list": [2], "object": {"n": 2}, "1e30": 10 ** 30, "2.0": b"2.0"}


def _capacity_body(value: Any) -> Any:
    if isinstance(value, bytes):  # a JSON number as written (Python's json cannot write 1e400 or 1e-400)
        return b'{"sku": {"capacity": ' + value + b"}}"
    return {"sku": {"capacity": value}}


def capacity_cases() -> list[Case]:
    out = []
    for name, value in CAPACITIES.items():
        out.append(Case(f"capacity-{name}-PATCH-web", "PATCH", WEB, _capacity_body(value), 400,
                        "InvalidParameter", "sku.capacity", headers={"Content-Type": "application/json"}))
    for name in ("five", "true", "-1", "1001", "1e400", "1e-400", "1e9", "1.5"):
        out.append(Case(f"capacity-{name}-PUT-web", "PUT", WEB, Model("web", CAPACITIES[name]), 400,
                        "InvalidParameter", "sku.capacity", headers={"Content-Type": "application/json"}))
        out.append(Case(f"capacity-{name}-PUT-new", "PUT", SETS + "/fresh", Model("new", CAPACITIES[name]), 400,
                        "InvalidParameter", "sku.capacity", headers={"Content-Type": "application/json"}))
    return out


LONG = "n" * 5000
BAD_NAMES = {"dotdot": "%2e%2e", "slash": "..%2f0", "nul": "web%00", "long": LONG, "space": "web%20x",
             "unicode": "w%C3%A9b", "semicolon": "web;rm"}
BAD_IIDS = {"dotdot": "%2e%2e", "slash": "..%2f0", "nul": "0%00", "negative": "-1", "huge": "9" * 5000,
            "hex": "0x1", "superscript": "%C2%B2", "space": "%200", "missing": "7", "word": "five"}


def name_cases() -> list[Case]:
    out = []
    for name, seg in BAD_NAMES.items():
        out.append(Case(f"name-{name}-GET", "GET", f"{SETS}/{seg}", NOBODY, (400, 404)))
        out.append(Case(f"name-{name}-PUT", "PUT", f"{SETS}/{seg}", Model("new"), (400, 404)))
        out.append(Case(f"name-{name}-POST-restart", "POST", f"{SETS}/{seg}/restart", NOBODY, (400, 404)))
    for name, seg in BAD_IIDS.items():
        out.append(Case(f"iid-{name}-GET", "GET", f"{VMS}/{seg}", NOBODY, (400, 404)))
        out.append(Case(f"iid-{name}-POST-reimage", "POST", f"{VMS}/{seg}/reimage", NOBODY, (400, 404)))
        out.append(Case(f"iid-{name}-PATCH", "PATCH", f"{VMS}/{seg}",
                        {"properties": {"protectionPolicy": {"protectFromScaleIn": True}}}, (400, 404)))
        out.append(Case(f"iid-{name}-web-json", "GET", f"{LAB}/scalesets/web/instances/{seg}", NOBODY, (400, 404)))
    for name, seg in (("dotdot", "%2e%2e"), ("long", LONG), ("nul", "debian%00")):
        out.append(Case(f"gallery-name-{name}-GET", "GET", f"{GALS}/{seg}/images/debian-12", NOBODY, (400, 404)))
        out.append(Case(f"gallery-version-{name}-PUT", "PUT", f"{VERS}/{seg}",
                        {"properties": {"storageProfile": {"osDiskImage": {"source": {"uri": "{tmp}/good.qcow2"}}}}},
                        (400, 404)))
    for name, ud in (("99", "99"), ("superscript", "%C2%B2"), ("negative", "-1"), ("word", "x")):
        out.append(Case(f"web-ud-{name}", "POST", f"{LAB}/scalesets/web/updateDomains/{ud}/upgrade", NOBODY, 400))
    return out


INSTANCE_IDS: dict[str, Any] = {"dotdot": ["../0"], "missing": ["7"], "ints": [0], "string": "0", "empty-id": [""],
                                "negative": ["-1"], "superscript": ["²"], "huge": ["9" * 5000], "nul": ["0\x00"],
                                "object": {"0": True}, "mixed": ["0", "../1"], "null-item": [None]}


def instance_id_cases() -> list[Case]:
    out = []
    for name, ids in INSTANCE_IDS.items():
        for action in ("reimage", "manualupgrade", "restart"):
            status = 400 if name in ("ints", "string", "object", "null-item") else (400, 404)  # 404: no such instance
            out.append(Case(f"instanceIds-{name}-{action}", "POST", f"{WEB}/{action}", {"instanceIds": ids}, status,
                            target="instanceIds"))
    for name, raw in (("list", []), ("string", "x"), ("number", 1)):
        out.append(Case(f"action-body-{name}-reimage", "POST", f"{WEB}/reimage", raw, 400))
    return out


SKIPTOKENS = {"superscript": "²", "digits-5000": "9" * 5000, "negative": "-1", "word": "abc", "float": "1.5",
              "exp": "1e3", "space": " 1", "arabic": "٣"}
LISTS = [SETS, VMS, GALS, VERS, WEB + "/osUpgradeHistory", "/subscriptions",
         f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachineScaleSets", GAL + "/images"]


def skiptoken_cases() -> list[Case]:
    out = []
    for n, (name, token) in enumerate(SKIPTOKENS.items()):
        for path in (LISTS[n % len(LISTS)], LISTS[(n + 4) % len(LISTS)]):
            out.append(Case(f"skiptoken-{name}-{_slug(path)}", "GET", path, NOBODY, 400,
                            query={"api-version": V, "$skiptoken": token}))
    return out


def _image(uri: str, version: str) -> dict:
    return {"location": "local", "properties": {"storageProfile": {"osDiskImage": {"source": {"uri": uri}}}}}


# Files no gallery may import; the first group must all get one answer (no file-existence oracle).
UNREADABLE = {"missing": "{tmp}/missing.qcow2", "shadow": "/etc/shadow", "environ": "/proc/self/environ",
              "state-db": "{home}/state.db", "directory": "{tmp}", "text": "{tmp}/notes.txt",
              "raw": "{tmp}/raw.img"}
HOST_FILES = {"backing-file": "{tmp}/backed.qcow2", "data-file": "{tmp}/datafile.qcow2",
              "symlink-shadow": "{tmp}/shadow-link", "dev-zero": "/dev/zero", "dev-null": "/dev/null",
              "relative": "etc/shadow", "dotdot": "../../etc/shadow", "url-host": "file://evil.example/etc/shadow",
              "http": "http://127.0.0.1:1/x.qcow2", "file-url-shadow": "file:///etc/shadow", "nul": "{tmp}/a\x00b",
              "long": "/" + "a" * 5000, "empty": ""}


def gallery_cases() -> list[Case]:
    out = []
    for n, (name, uri) in enumerate({**UNREADABLE, **HOST_FILES}.items()):
        out.append(Case(f"source-{name}", "PUT", f"{VERS}/3.0.{n}", _image(uri, f"3.0.{n}"), 400,
                        target="source.uri"))
    bad_props = {"exclude-string": {"publishingProfile": {"excludeFromLatest": "yes"}},
                 "regions-string": {"publishingProfile": {"targetRegions": "local"}},
                 "regions-empty": {"publishingProfile": {"targetRegions": []}},
                 "region-traversal": {"publishingProfile": {"targetRegions": [{"name": "../x"}]}},
                 "lab-unknown": {"lab": {"shell": "rm -rf /"}},
                 "recipe-traversal": {"lab": {"recipe": "../../etc/passwd"}},
                 "customize-missing": {"lab": {"customize": ["{tmp}/missing.sh"]}},
                 "customize-relative": {"lab": {"customize": ["setup.sh"]}}}
    for n, (name, props) in enumerate(bad_props.items()):
        out.append(Case(f"gallery-props-{name}-PUT", "PUT", f"{VERS}/4.0.{n}", {"properties": props}, 400))
    for name in ("exclude-string", "regions-string", "region-traversal"):
        out.append(Case(f"gallery-props-{name}-PATCH", "PATCH", f"{VERS}/1.0.0", {"properties": bad_props[name]}, 400))
    out.append(Case("web-exclude-string", "POST", LAB + "/images/scaleset-lab/debian/debian-12/1.0.0/excludeFromLatest",
                    {"excludeFromLatest": "yes"}, 400))
    return out


STALE = '"999999"'


def precondition_cases() -> list[Case]:
    out = [Case("if-match-stale-PATCH-web", "PATCH", WEB, {"properties": {"labSettings": {"memoryMiB": 768}}}, 412,
                "PreconditionFailed", headers={"If-Match": STALE}),
           Case("if-match-stale-PUT-web", "PUT", WEB, Model("web"), 412, "PreconditionFailed",
                headers={"If-Match": STALE}),
           Case("if-none-match-star-PUT-web", "PUT", WEB, Model("web"), 412, "PreconditionFailed",
                headers={"If-None-Match": "*"}),
           Case("if-none-match-star-PATCH-web", "PATCH", WEB, {"properties": {"labSettings": {"memoryMiB": 768}}}, 412,
                "PreconditionFailed", headers={"If-None-Match": "*"}),
           Case("if-match-missing-set-PUT", "PUT", SETS + "/fresh", Model("new"), 412, "PreconditionFailed",
                headers={"If-Match": '"1"'}),
           Case("if-match-stale-PATCH-vm", "PATCH", VM0,
                {"properties": {"protectionPolicy": {"protectFromScaleIn": True}}},
                412, "PreconditionFailed", headers={"If-Match": STALE}),
           Case("if-match-stale-PATCH-version", "PATCH", VERS + "/1.0.0",
                {"properties": {"publishingProfile": {"excludeFromLatest": True}}}, 412, "PreconditionFailed",
                headers={"If-Match": '"nope"'})]
    for name, value in (("empty", ""), ("commas", ", ,"), ("long", '"' + "1" * 300 + '"')):
        out.append(Case(f"if-match-{name}-PATCH-web", "PATCH", WEB, {"properties": {"labSettings": {"memoryMiB": 768}}},
                        400, "InvalidParameter", "If-Match", headers={"If-Match": value}))
    # last: on today's code these delete the set (the test puts it back)
    out += [Case("if-match-stale-DELETE-web", "DELETE", WEB, NOBODY, 412, "PreconditionFailed",
                 headers={"If-Match": STALE}),
            Case("if-none-match-star-DELETE-web", "DELETE", WEB, NOBODY, 412, "PreconditionFailed",
                 headers={"If-None-Match": "*"})]
    return out


CASES: list[Case] = [*auth_cases(), *api_version_cases(), *route_cases(), *json_cases(), *name_cases(),
                     *instance_id_cases(), *skiptoken_cases(), *gallery_cases(), *capacity_cases(),
                     *precondition_cases()]
assert len({c.id for c in CASES}) == len(CASES), "case ids are unique"
