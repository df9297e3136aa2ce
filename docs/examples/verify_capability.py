#!/usr/bin/env python3
"""Check a Lexecon capability token the way an upstream should (docs/tokens.md).

Usage: verify_capability.py JWKS_FILE AUDIENCE METHOD TARGET BODY_FILE < TOKEN
  JWKS_FILE  Lexecon's keys (GET /.well-known/jwks.json on the admin listener)
  AUDIENCE   this upstream's name (the route's upstream)
  METHOD, TARGET, BODY_FILE  the request as this upstream received it (BODY_FILE may be /dev/null)
Prints the claims and exits 0 when every check passes; prints the reason and exits 1 otherwise.
Needs only the standard library and `cryptography` (Ed25519).
"""
import base64
import hashlib
import json
import sys
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

LEEWAY = 5  # seconds of clock skew allowed on exp


def b64decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def verify(token, jwks, audience, method, target, body):
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = json.loads(b64decode(header_b64))
    if header.get("alg") != "EdDSA":
        raise ValueError("alg must be EdDSA")
    key = next((k for k in jwks["keys"] if k.get("kid") == header.get("kid")), None)
    if key is None:
        raise ValueError("the token's kid is not in the JWKS")
    public = Ed25519PublicKey.from_public_bytes(b64decode(key["x"]))
    try:
        public.verify(b64decode(signature_b64), f"{header_b64}.{claims_b64}".encode())
    except InvalidSignature:
        raise ValueError("signature does not verify")
    claims = json.loads(b64decode(claims_b64))
    if claims.get("aud") != audience:
        raise ValueError(f"audience is {claims.get('aud')!r}, not {audience!r}")
    if claims["exp"] + LEEWAY < time.time():
        raise ValueError("expired")
    # Bound to the request it travels with: the same method and target, and the same body
    # when Lexecon read it (bdh is absent when the route's body streamed after the decision).
    if claims.get("htm") != method or claims.get("htu") != target:
        raise ValueError(f"token is for {claims.get('htm')} {claims.get('htu')}, not {method} {target}")
    if "bdh" in claims and claims["bdh"] != b64encode(hashlib.sha256(body).digest()):
        raise ValueError("token is for another body")
    # An upstream that refuses replays keeps the jti it has seen until exp (with
    # tokens.mode: per_request; `reuse` hands identical requests the same token).
    return claims


def main():
    jwks_file, audience, method, target, body_file = sys.argv[1:6]
    with open(jwks_file) as f:
        jwks = json.load(f)
    with open(body_file, "rb") as f:
        body = f.read()
    try:
        claims = verify(sys.stdin.read().strip(), jwks, audience, method, target, body)
    except (ValueError, KeyError) as e:
        print(f"refused: {e}")
        return 1
    print(json.dumps(claims, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
