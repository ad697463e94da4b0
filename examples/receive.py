#!/usr/bin/env python3
# receive.py: a plain WebSocket client (standard library only) that logs in and prints the data of every push.
# Run: python3 receive.py ws://localhost:8080/ws alice        (auth first_message, as in Caddyfile.example)
#      PUSH_TOKEN=<jwt> python3 receive.py wss://push.example.com/ws   (auth jwt)
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
from urllib.parse import urlsplit


def connect(url):
    """Opens the socket and does the WebSocket handshake (RFC 6455, 4.1)."""
    u = urlsplit(url)
    sock = socket.create_connection((u.hostname, u.port or (443 if u.scheme == "wss" else 80)))
    if u.scheme == "wss":
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=u.hostname)
    key = base64.b64encode(os.urandom(16)).decode()
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    reader = sock.makefile("rb")
    status, headers = reader.readline().decode(), {}
    while (line := reader.readline().decode().strip()):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    if " 101 " not in status or headers.get("sec-websocket-accept") != accept:
        sys.exit("handshake refused: " + status.strip())
    return sock, reader


def send(sock, payload, opcode=1):
    """Sends one frame, masked as a client must."""
    mask, n = os.urandom(4), len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else
                                     struct.pack("!BH", 0x80 | 126, n) if n < 65536 else struct.pack("!BQ", 0x80 | 127, n))
    sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def messages(sock, reader):
    """Yields each text message; answers pings; ends with the close frame."""
    parts = []
    while len(head := reader.read(2)) == 2:
        opcode, n = head[0] & 0x0F, head[1] & 0x7F
        if n >= 126:
            (n,) = struct.unpack("!H" if n == 126 else "!Q", reader.read(2 if n == 126 else 8))
        payload = reader.read(n)
        if opcode == 9:  # ping: pong with the same payload
            send(sock, payload, 10)
        elif opcode == 8:  # close: answer it and stop
            send(sock, payload[:2], 8)
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            print(f"closed: {code} {payload[2:].decode()}", file=sys.stderr)
            return
        elif opcode in (0, 1):  # a text message, perhaps in fragments
            parts.append(payload)
            if head[0] & 0x80:
                yield b"".join(parts).decode()
                parts = []


if len(sys.argv) < 2:
    sys.exit("usage: python3 receive.py <ws url> [<uid>]")
sock, reader = connect(sys.argv[1])
token = os.environ.get("PUSH_TOKEN")
login = {"type": "login", "token": token} if token else {"type": "login", "uid": sys.argv[2]}
send(sock, json.dumps(login).encode())
for text in messages(sock, reader):
    frame = json.loads(text)
    if frame["type"] == "welcome":
        print("logged in as", frame["uid"], flush=True)
    elif frame["type"] == "message":
        print(json.dumps(frame["data"], ensure_ascii=False, separators=(",", ":")), flush=True)
    elif frame["type"] == "error":
        print(f"{frame['code']}: {frame['message']}", file=sys.stderr, flush=True)
