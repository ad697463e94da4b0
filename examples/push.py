#!/usr/bin/env python3
# push.py: push a message to a uid through push_api, with urllib from Python's standard library.
# Run: PUSH_API_KEY=<key> python3 push.py alice "hello from Python"
# PUSH_API_URL defaults to http://127.0.0.1:7070 (the push_api site of Caddyfile.example).
import json
import os
import sys
import urllib.error
import urllib.request

if len(sys.argv) != 3:
    sys.exit("usage: python3 push.py <uid> <message>")
api = os.environ.get("PUSH_API_URL", "http://127.0.0.1:7070")
request = urllib.request.Request(
    api + "/send",
    data=json.dumps({"uid": sys.argv[1], "data": sys.argv[2]}).encode(),
    headers={"Content-Type": "application/json", "Authorization": "Bearer " + os.environ.get("PUSH_API_KEY", "")},
)
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(response.read().decode(), end="")
except urllib.error.HTTPError as e:
    sys.exit(f"push_api refused: {e.code} {e.read().decode()}")
