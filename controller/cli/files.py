"""`scaleset files put|url`: files for extension fileUris, with expiring tokens."""
from __future__ import annotations

from pathlib import Path

from controller.core.settings import lab_paths
from controller.model.jsonmap import parse_duration
from controller.ops.fileserver import put, url


def cmd_put(args) -> int:
    print(put(lab_paths().ensure(), Path(args.file), args.name))
    return 0


def cmd_url(args) -> int:
    print(url(lab_paths(), args.name, parse_duration(args.expires_in, "--expires-in")))
    return 0


def register(sub) -> None:
    files = sub.add_parser("files", help="files served to guests for extension fileUris (by `scaleset controller`)"
                           ).add_subparsers(dest="files_cmd", required=True)
    p = files.add_parser("put", help="copy a file into $SCALESET_HOME/files")
    p.add_argument("--file", required=True)
    p.add_argument("--name", help="name under files/ (default: the file's name)")
    p.set_defaults(func=cmd_put)
    p = files.add_parser("url", help="a guest-side URL with a token that expires")
    p.add_argument("--name", required=True)
    p.add_argument("--expires-in", default="PT1H", metavar="DURATION", help="ISO-8601 (default %(default)s)")
    p.set_defaults(func=cmd_url)
