#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<harness>/ (deterministic).

Tokens are HS256/384/512 JWTs made with Python's hmac under the harnesses' secret and frozen
clock (fuzz_common.h); cursors follow cursor.h ("r1|<topic>|<epoch>|<ms>-<seq>", base64url
without padding) in the hub epoch the harnesses fix, so they resume for real. Files named
regress-* are crash reproducers and are kept as they are. Run from anywhere:
    python3 tests/fuzz/make_corpus.py
"""
import base64, hashlib, hmac, json, os, shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SECRET = b"fuzz-secret-0123456789abcdef"          # FUZZ_SECRET
API_KEY = "fuzz-api-key-0123456789abcdef"         # FUZZ_API_KEY
NOW = 1796121017                                  # FUZZ_NOW_MS / 1000
EPOCH = "0123456789abcdef"                        # FUZZ_EPOCH
MS = 1796121017808                                # the seeded history's first id: MS-0 ...


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(payload, header=None, key=SECRET, md=hashlib.sha256):
    h = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    p = b64(json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(key, (h + "." + p).encode(), md).digest()
    return h + "." + p + "." + b64(sig)


def cursor(*pos):
    raw = "r1" + "".join("|%s|%s|%s" % p for p in pos)
    return b64(raw.encode())


ALICE = jwt({"sub": "alice", "iat": NOW - 10, "exp": NOW + 3600})
C_ROOM0 = cursor(("room:1", EPOCH, "%d-0" % MS))
C_ROOM_LATEST = cursor(("room:1", EPOCH, "%d-0" % (MS + 1)))
C_TWO = cursor(("room:1", EPOCH, "%d-1" % MS), ("user:alice", EPOCH, "%d-1" % MS))
C_OLD = cursor(("room:1", "fedcba9876543210", "1-0"))

corpora = {}

corpora["fuzz_jwt"] = {
    "valid-hs256": ALICE,
    "grants": jwt({"sub": "bob", "iat": NOW, "exp": NOW + 60, "topics": ["room:*", "news:sport"],
                   "publish": ["room:1"]}),
    "expired": jwt({"sub": "alice", "iat": NOW - 7200, "exp": NOW - 3600}),
    "alg-none": b64(b'{"alg":"none"}') + "." + b64(b'{"sub":"alice"}') + ".",
    "bad-signature": ALICE[:-2] + ("AA" if not ALICE.endswith("AA") else "BA"),
    "hs384-kid": jwt({"sub": "carol", "exp": NOW + 60}, {"alg": "HS384", "kid": "k384"},
                     b"fuzz-hs384-secret-0123456789", hashlib.sha384),
    "iss-aud": jwt({"sub": "dave", "iss": "https://issuer.example", "aud": ["x", "rtgate"],
                    "nbf": NOW - 5, "exp": NOW + 5}),
    "es256-header": b64(b'{"alg":"ES256","kid":"ec"}') + "." + b64(b'{"sub":"e"}') + "." +
                    b64(bytes(64)),
    "signed-mode-kid": '{"alg":"HS512","kid":"k512"}\n'
                       '{"sub":"bob","exp":%d,"topics":["room:*"],"publish":[]}' % (NOW + 60),
    "signed-mode-plain": '{"sub":"carol","nbf":%d,"iat":%d,"aud":"rtgate"}' % (NOW, NOW),
    "signed-mode-bad-claims": '{"alg":"HS256"}\n{"sub":"a b","exp":1.5,"topics":"room:1"}',
    "sub": "alice.example@host-1_x",
    "pattern": "room:*\nroom:1",
}

corpora["fuzz_cursor"] = {
    "one-topic": C_ROOM0,
    "two-topics": C_TWO,
    "other-epoch": C_OLD,
    "max-id": cursor(("news:sport", EPOCH, "18446744073709551615-18446744073709551615")),
    "leading-zeros": cursor(("room:1", EPOCH, "007-00")),
    "raw-two": "r1|room:1|%s|%d-0|user:alice|%s|0-0" % (EPOCH, MS, EPOCH),
    "raw-duplicate": "r1|room:1|%s|1-0|room:1|%s|2-0" % (EPOCH, EPOCH),
    "raw-trailing-bar": "r1|room:1|%s|1-0|" % EPOCH,
    "padded": C_ROOM0 + "==",
}

corpora["fuzz_topic"] = {
    "room": "room:1",
    "user": "user:alice",
    "short": "a:b",
    "long-kind": "k" * 32 + ":" + "i" * 128,
    "id-chars": "x:AZaz09_.@-",
    "two-colons": "room:1:2",
    "upper-kind": "Room:1",
    "msg-id": "%d-0" % MS,
    "msg-id-max": "18446744073709551615-18446744073709551615",
    "msg-id-overflow": "18446744073709551616-0",
    "msg-id-zeros": "007-00",
}

conf_min = {"auth": {"jwt_secret": "0123456789abcdef"}}
conf_prod = {
    "listen": {"address": "0.0.0.0", "port": 8080}, "log_level": "notice",
    "websocket": {"ping_interval_s": 30, "idle_timeout_s": 75},
    "longpoll": {"default_timeout_s": 25, "max_timeout_s": 50},
    "limits": {"max_connections": 50000, "send_queue": 256},
    "auth": {"jwt_secret": "replace-with-output-of-openssl-rand-base64-32",
             "api_keys": ["orders-service-7f3c9a1e5b2d4c6f", "billing-service-0a8e2f6c4d1b9e7a"]},
    "shutdown_timeout_ms": 10000}
conf_redis = {"auth": {"jwt_secret": "0123456789abcdef0123"},
              "backplane": {"type": "redis", "url": "redis://user:pa$$word!secret@10.0.0.5:6380/2",
                            "connect_timeout_ms": 500, "history_ttl_s": 60, "max_pending": 10,
                            "signing_key": "node-signing-key-0123456789!"},
              "websocket": {"allowed_origins": ["https://app.example.com", "*"]},
              "cors": {"allowed_origins": ["*", "https://app.example.com", "http://[::1]:8080"]}}
conf_keys = {"auth": {"jwt_secret_file": "/fuzz/secret", "api_keys_file": "/fuzz/api_keys",
                      "keys": [{"kid": "a", "alg": "HS384", "secret": "0123456789abcdef0123"},
                               {"kid": "ec", "alg": "ES256", "public_key_file": "/fuzz/ec.pem"},
                               {"kid": "rsa", "alg": "RS256", "public_key_file": "/fuzz/rsa.pem"}],
                      "leeway_s": 30, "issuer": "https://issuer.example", "audience": "rtgate",
                      "default_topics": ["room:*", "*"], "default_publish": ["room:1"]}}
corpora["fuzz_conf"] = {
    "rtgate.json": open(os.path.join(ROOT, "conf", "rtgate.json")).read(),
    "minimal": json.dumps(conf_min),
    "production": json.dumps(conf_prod, indent=2),
    "redis-cors": json.dumps(conf_redis),
    "keys-files": json.dumps(conf_keys),
    "bad-types": '{"listen":{"port":"8080"},"history":{"size":8080.0},"auth":{"jwt_secret":1}}',
    "unknown-key": '{"auth":{"jwt_secret":"0123456789abcdef"},"listen":{"adress":"::1"}}',
    "duplicate": '{"auth":{"jwt_secret":"0123456789abcdef"},"log_level":"err","log_level":"x"}',
    "webrtc": '{"auth":{"jwt_secret":"0123456789abcdef"},"webrtc":{"stun_urls":["stun:a:3478"],'
              '"turn_urls":["turn:127.0.0.1:3478?transport=udp"],"turn_secret":"0123456789abcdef",'
              '"turn_ttl_s":600}}',
}

def frames(*fs):
    return "\n".join(json.dumps(f, separators=(",", ":")) if not isinstance(f, str) else f
                     for f in fs)

corpora["fuzz_ws_frame"] = {
    "readme-subscribe": frames({"type": "subscribe", "topic": "room:1", "rid": 1}),
    "readme-resume": frames({"type": "subscribe", "topic": "room:1", "cursor": C_ROOM0, "rid": 2}),
    "resume-lost": frames({"type": "subscribe", "topic": "room:1", "cursor": C_OLD, "rid": "x"}),
    "readme-session": frames(
        {"type": "subscribe", "topic": "user:alice", "rid": 1},
        {"type": "send", "to": "bob", "data": {"text": "hi"}, "rid": 4},
        {"type": "publish", "topic": "room:1", "data": 42, "rid": 5},
        {"type": "ping", "rid": 6},
        {"type": "unsubscribe", "topic": "room:1", "rid": 3}),
    "publish-own-topic": frames(
        {"type": "subscribe", "topic": "room:2", "rid": [1]},
        {"type": "publish", "topic": "room:2", "data": {"s": "line\nbreak\r\u2028", "n": -0.5e-3}},
        {"type": "send", "to": "alice", "data": [None, True, "\u00e9"]}),
    "errors": frames({"type": "subscribe", "topic": "user:bob"}, {"type": "x"}, [], '"str"',
                     {"rid": 1}, {"type": "publish", "topic": "room:1"},
                     {"type": "send", "to": "bob", "topic": "room:1", "data": 1},
                     {"type": "subscribe", "topic": "room:1", "cursor": "!!"}),
    "fragments": "\x02" + frames({"type": "ping", "rid": 9}) + "\n\x03" +
                 frames({"type": "subscribe", "topic": "room:9"}),
    "binary": "\x01" + frames({"type": "ping"}),
    "ephemeral-signaling": frames(
        {"type": "subscribe", "topic": "user:alice", "rid": 1},
        {"type": "send", "to": "alice", "ephemeral": True, "rid": 2,
         "data": {"type": "offer", "call": "c1", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}},
        {"type": "send", "to": "bob", "ephemeral": True, "data": {"type": "hangup", "call": "c1"}},
        {"type": "publish", "topic": "room:1", "ephemeral": "yes", "data": 1},
        {"type": "subscribe", "topic": "user:alice", "cursor": C_ROOM0, "rid": 3}),
    "malformed": '{"type":"ping"',
}

corpora["fuzz_api_body"] = {
    "readme-send": frames({"to": "bob", "data": {"text": "hi Bob"}}),
    "readme-publish": frames({"topic": "room:1", "data": {"score": "2-1"}, "from": "scores-bot"}),
    "number": frames({"topic": "room:1", "data": 42}),
    "both": frames({"topic": "room:1", "to": "bob", "data": 1}),
    "missing-data": frames({"to": "bob"}),
    "bad-topic": frames({"topic": "Room 1", "data": None}),
    "bad-from": frames({"topic": "room:1", "data": 0, "from": "a b"}),
    "newlines": frames({"to": "alice", "data": {"t": "a\nb\r\n\n\u2028", "x": [1.5, -0.0, 1e300]}}),
    "nested": '{"to":"bob","data":' + "[" * 50 + "]" * 50 + "}",
    "not-object": "[1,2,3]",
    "duplicate-keys": '{"to":"bob","to":"eve","data":1}',
    "ephemeral": frames({"to": "alice", "ephemeral": True, "data": {"type": "candidate", "call": "c1"}}),
    "ephemeral-bad": frames({"topic": "room:1", "ephemeral": 1, "data": 1}),
}

def req(line, headers=(), body=""):
    return line + " HTTP/1.1\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n" + body

AUTH = "Authorization: Bearer " + ALICE
corpora["fuzz_query"] = {
    "poll": req("GET /v1/poll?topics=room:1", [AUTH]),
    "poll-earliest": req("GET /v1/poll?topics=room:1,user:alice&since=earliest", [AUTH]),
    "poll-304": req("GET /v1/poll?topics=room:1&cursor=" + C_ROOM_LATEST,
                    [AUTH, 'If-None-Match: "%s"' % C_ROOM_LATEST]),
    "longpoll": req("GET /v1/longpoll?topics=room:1&cursor=%s&timeout=5" % C_ROOM_LATEST, [AUTH]),
    "sse-resume": req("GET /v1/sse?topics=room:1,user:alice", [AUTH, "Last-Event-ID: " + C_TWO]),
    "sse-token-drain": req("GET /v1/sse?token=" + ALICE) + "!",
    "sse-cursor-lost": req("GET /v1/sse?topics=room:1&cursor=" + C_OLD, [AUTH]),
    "preflight": req("OPTIONS /v1/messages", ["Origin: https://app.example.com"]),
    "cors-poll": req("GET /v1/poll?topics=room:1&since=earliest", [AUTH, "Origin: http://x.test"]),
    "health": req("GET /healthz"),
    "metrics": req("GET /metrics"),
    "not-found": req("GET /nope"),
    "ice": req("GET /v1/ice", [AUTH]),
    "ice-no-auth": req("GET /v1/ice"),
    "wrong-method": req("POST /v1/poll", ["Content-Length: 2"], "{}"),
    "ws-plain": req("GET /v1/ws", [AUTH]),
    "post-message": req("POST /v1/messages", [AUTH, "Content-Length: 37"],
                        '{"to":"bob","data":{"text":"hi Bob"}}'),
    "forbidden": req("GET /v1/poll?topics=user:bob", [AUTH]),
    "no-auth": req("GET /v1/poll?topics=room:1"),
    "bad-timeout": req("GET /v1/longpoll?topics=room:1&timeout=x", [AUTH]),
    "ws-upgrade": req("GET /v1/ws", [AUTH, "Upgrade: websocket", "Connection: Upgrade"],
                      frames({"type": "subscribe", "topic": "room:1", "cursor": C_ROOM0},
                             {"type": "ping", "rid": 1})),
    "ws-token-origin": req("GET /v1/ws?token=" + ALICE,
                           ["Upgrade: websocket", "Origin: https://app.example.com"],
                           frames({"type": "publish", "topic": "room:1", "data": "x"})),
    "ws-bad-origin": req("GET /v1/ws", [AUTH, "Upgrade: websocket", "Origin: https://evil.test"]),
}



def resp(*items):
    """RESP bytes of one reply: str -> bulk string, int -> integer, list -> array."""
    def one(x):
        if isinstance(x, int):
            return ":%d\r\n" % x
        if isinstance(x, list):
            return "*%d\r\n" % len(x) + "".join(one(y) for y in x)
        return "$%d\r\n%s\r\n" % (len(x.encode()), x)
    return "".join(one(x) for x in items)


def sig(topic, frm, data):
    """backplane.signing_key's HMAC-SHA256, keyed with FUZZ_SECRET as fuzz_redis.c does."""
    return hmac.new(SECRET, ("%s\n%s\n%s" % (topic, frm, data)).encode(), hashlib.sha256).hexdigest()


def payload(epoch, mid, frm, data, signed=True):
    return "%s\n%s\n%s\n%s\n%s" % (epoch, mid, sig("room:1", frm, data) if signed else "", frm, data)


corpora["fuzz_redis"] = {
    "message": resp(["message", "topic:room:1", payload(EPOCH, "%d-0" % MS, "alice", '{"t":"hi"}', False)]),
    "message-signed": resp(["message", "topic:room:1", payload(EPOCH, "%d-1" % MS, "bob", "[1,2]")]),
    "message-forged": resp(["message", "topic:room:1", payload(EPOCH, "%d-2" % MS, "mallory", "1", False)]),
    "subscribe": resp(["subscribe", "topic:room:1", 1]),
    "ephemeral": resp(["message", "topic:room:1",
                       payload("%016x" % MS, "0-0", "alice", '{"type":"offer","call":"c1"}')]),
    "two-replies": resp(["message", "topic:room:1", payload(EPOCH, "1-0", "", "null")],
                        ["message", "topic:user:bob", payload(EPOCH, "1-1", "alice", '"x"')]),
    "history": resp([EPOCH, "%d-1" % MS, 0, 0,
                     "%d-0" % MS, "alice", '{"t":"hi"}', sig("room:1", "alice", '{"t":"hi"}'),
                     "%d-1" % MS, "bob", "2", sig("room:1", "bob", "2")]),
    "history-reset": resp(["0000000000000000", "0-0", 1, 0]),
    "history-more": resp([EPOCH, "9-0", 0, 1, "5-0", "", "true", ""]),
    "noscript": "-NOSCRIPT No matching script. Please use EVAL.\r\n",
}

for name, files in corpora.items():
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if not f.startswith("regress-"):
            os.remove(os.path.join(d, f))
    for f, text in files.items():
        with open(os.path.join(d, f), "w", newline="") as out:
            out.write(text)
