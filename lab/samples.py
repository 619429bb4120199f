"""Extensions the demo and the tests use: the sample application and the health extension."""
from __future__ import annotations

import base64
from pathlib import Path

SAMPLE_APP = Path(__file__).resolve().parent / "extensions" / "sample-app.sh"
APP_PORT = 8080


def sample_app_extension(name: str = "sample-app", port: int = APP_PORT) -> dict:
    """A CustomScript that installs a tiny app serving the rich health body on `port`;
    `touch /var/lib/sample-app/unhealthy` (run-command) flips it, `rm` flips it back."""
    script = f"#!/bin/sh\nexport SAMPLE_APP_PORT={int(port)}\n" + SAMPLE_APP.read_text()
    return {"name": name, "properties": {
        "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript", "typeHandlerVersion": "2.1",
        "settings": {"script": base64.b64encode(script.encode()).decode()}}}


def health_extension(name: str = "health", port: int = APP_PORT, interval: int = 5, probes: int = 1,
                     after: list[str] | None = None) -> dict:
    """ApplicationHealthLinux probing the sample app's /health inside the guest."""
    return {"name": name, "properties": {
        "publisher": "Microsoft.ManagedServices", "type": "ApplicationHealthLinux", "typeHandlerVersion": "1.0",
        "settings": {"protocol": "http", "port": int(port), "requestPath": "/health",
                     "intervalInSeconds": int(interval), "numberOfProbes": int(probes)},
        "provisionAfterExtensions": list(after or [])}}
