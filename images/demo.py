"""Create the demo stream and rule (pyjson -> revert -> print) once eKuiper answers.

Run by compose's one-shot `demo` service; safe to run again (existing ones are kept).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

URL = os.environ.get("EKUIPER_URL", "http://ekuiper:9081").rstrip("/")
STREAM = {"sql": 'CREATE STREAM demo () WITH (TYPE="pyjson", DATASOURCE="demo", FORMAT="json")'}
RULE = {
    "id": "demo",
    "sql": "SELECT revert(name) AS reversed, value, datasource FROM demo",
    "actions": [{"print": {"prefix": "demo"}}],
}


def post(path: str, body: dict) -> tuple[int, str]:
    request = urllib.request.Request(URL + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def main() -> int:
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(URL + "/", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                print(f"demo: eKuiper at {URL} did not answer within 120 s", file=sys.stderr)
                return 1
            time.sleep(1)
    for path, body in (("/streams", STREAM), ("/rules", RULE)):
        status, text = post(path, body)
        if status >= 400 and "already exist" not in text:
            print(f"demo: POST {path} failed ({status}): {text}", file=sys.stderr)
            return 1
        print(f"demo: POST {path}: {status} {text.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
