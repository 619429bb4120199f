"""`scaleset files put|url`: files for extension fileUris, with expiring tokens."""
from __future__ import annotations

import shutil
from pathlib import Path

from controller.core.errors import ModelError, from_os_error
from controller.core.files import atomic_open
from controller.core.settings import lab_paths
from controller.model.jsonmap import parse_duration
from controller.ops.fileserver import check_name, url


def cmd_put(args) -> int:
    """Copy the file in whole or not at all: a full disk never leaves a truncated file to serve."""
    paths = lab_paths().ensure()
    src = Path(args.file)
    if not src.is_file():
        raise ModelError("--file", f"{src} is not a file")
    given = args.name is not None
    name = check_name(args.name if given else src.name, "--name" if given else "--file")
    dest = paths.files / name
    try:
        with src.open("rb") as f_in, atomic_open(dest, 0o600) as f_out:
            shutil.copyfileobj(f_in, f_out, 1024 * 1024)
    except OSError as exc:
        raise from_os_error(exc, str(dest if exc.filename != str(src) else src)) from None
    print(name)
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
