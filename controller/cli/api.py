"""`scaleset api token|env`: what a client (Azure's SDK, `az`, curl) needs to call the lab's API."""
from __future__ import annotations

import json
import shlex
import sys

from controller.api.endpoint import current_port, endpoint
from controller.api.tls import ensure_certs
from controller.api.tokens import DEFAULT_TTL, MAX_TTL, mint
from controller.core.errors import ModelError
from controller.core.settings import lab_paths
from controller.model.armid import DEFAULT_RESOURCE_GROUP, SUBSCRIPTION_ID
from controller.model.jsonmap import parse_duration

# `api env -o json` key -> the variable of its shell line
SHELL_NAMES = {"endpoint": "SCALESET_API_ENDPOINT", "caCertPath": "SCALESET_API_CA_CERT",
               "subscriptionId": "AZURE_SUBSCRIPTION_ID", "resourceGroup": "SCALESET_RESOURCE_GROUP",
               "token": "SCALESET_API_TOKEN"}


def token_ttl(text: str) -> float:
    """--expires-in as seconds: an ISO-8601 duration, more than 0, at most MAX_TTL."""
    seconds = parse_duration(text, "--expires-in", MAX_TTL)
    if seconds <= 0:
        raise ModelError("--expires-in", f"'{text}' is not longer than 0 seconds")
    return seconds


def cmd_token(args) -> int:
    ttl = token_ttl(args.expires_in)
    print(mint(lab_paths().ensure(), ttl))
    return 0


def env(ttl: float = DEFAULT_TTL) -> dict:
    """The five values a client needs, with a fresh token; the certificates are made if missing."""
    paths = lab_paths().ensure()
    certs = ensure_certs(paths)
    return {"endpoint": endpoint(current_port(paths)), "caCertPath": str(certs.ca),
            "subscriptionId": SUBSCRIPTION_ID, "resourceGroup": DEFAULT_RESOURCE_GROUP, "token": mint(paths, ttl)}


def cmd_env(args) -> int:
    values = env()
    if args.output == "json":
        json.dump(values, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for key, name in SHELL_NAMES.items():
            print(f"export {name}={shlex.quote(values[key])}")
    return 0


def register(sub) -> None:
    api = sub.add_parser("api", help="tokens and settings for the ARM-shaped API that `scaleset controller` serves"
                         ).add_subparsers(dest="api_cmd", required=True)
    p = api.add_parser("token", help="print a new bearer token for the API")
    p.add_argument("--expires-in", default="PT1H", metavar="DURATION",
                   help=f"ISO-8601, at most {MAX_TTL // 86400} days (default %(default)s)")
    p.set_defaults(func=cmd_token)
    p = api.add_parser("env", help="endpoint, CA certificate, subscription, resource group and a token: "
                                   "shell `export` lines or, with -o json, JSON")
    p.add_argument("-o", "--output", choices=("json", "shell"), default="shell")
    p.set_defaults(func=cmd_env)
