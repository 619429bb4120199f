"""`scaleset dashboard`: a one-time login link to the web view that `scaleset controller` serves."""
from __future__ import annotations

import sys
import webbrowser

from controller.api.endpoint import current_port, endpoint, recorded_port
from controller.api.tls import ensure_certs
from controller.cli.api import token_ttl
from controller.core.settings import lab_paths
from controller.web.session import LOGIN_TTL, login_link


def cmd_dashboard(args) -> int:
    paths = lab_paths().ensure()
    ttl = token_ttl(args.expires_in)
    url = login_link(paths, endpoint(current_port(paths)), ttl)
    if recorded_port(paths) is None:
        print("note: no `scaleset controller` serves this lab now; the link works once one does",
              file=sys.stderr)
    print(f"the lab's CA certificate (trust it once in your browser): {ensure_certs(paths).ca}", file=sys.stderr)
    print(f"one-time login link, valid {ttl:g} s:", file=sys.stderr)
    if not args.no_browser:
        try:
            opened = webbrowser.open(url)
        except webbrowser.Error:
            opened = False
        if not opened:
            print("no browser could be opened here: open the link below", file=sys.stderr)
    print(url, flush=True)
    return 0


def register(sub) -> None:
    p = sub.add_parser("dashboard", help="print (and open) a one-time login link to the web view")
    p.add_argument("--no-browser", action="store_true", help="only print the link (on the last line)")
    p.add_argument("--expires-in", default=f"PT{int(LOGIN_TTL) // 60}M", metavar="DURATION",
                   help="how long the link can be used, once (ISO-8601, default %(default)s)")
    p.set_defaults(func=cmd_dashboard)
