#!/bin/sh
# scaleset-lab sample application (a CustomScript payload): serves the Application Health
# rich body on port ${SAMPLE_APP_PORT:-8080}. Make it unhealthy with
#   touch /var/lib/sample-app/unhealthy      (rm the file to make it healthy again)
set -eu
PORT="${SAMPLE_APP_PORT:-8080}"
mkdir -p /var/lib/sample-app
cat > /usr/local/bin/sample-app <<'PY'
#!/usr/bin/python3
"""GET /health -> {"ApplicationHealthState": "Healthy"|"Unhealthy"}; any other path -> hello."""
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLAG = "/var/lib/sample-app/unhealthy"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] == "/health":
            state = "Unhealthy" if os.path.exists(FLAG) else "Healthy"
            body = json.dumps({"ApplicationHealthState": state}).encode()
        else:
            body = b"hello from scaleset-lab\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
PY
chmod 755 /usr/local/bin/sample-app
cat > /etc/systemd/system/sample-app.service <<UNIT
[Unit]
Description=scaleset-lab sample application
After=network.target

[Service]
ExecStart=/usr/local/bin/sample-app $PORT
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now sample-app.service
echo "sample-app listening on port $PORT"
