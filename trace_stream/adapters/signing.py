"""Standard Webhooks signatures (https://www.standardwebhooks.com), sender side.

A receiver verifies with any Standard Webhooks library, e.g.
`standardwebhooks.webhooks.Webhook(secret).verify(body, headers)`, given the same
secret: the `whsec_<base64>` form, or for a raw secret its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFIX = "whsec_"


def decode_secret(secret: str) -> bytes:
    """The HMAC key: base64-decoded after `whsec_`, else the raw string's UTF-8 bytes.

    Raises ValueError (without echoing the secret) if the key would be empty or the
    `whsec_` part is not base64.
    """
    if secret.startswith(PREFIX):
        encoded = secret.removeprefix(PREFIX)
        try:
            # Some issuers drop the base64 padding; restore it as the reference library does.
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            raise ValueError("the part after 'whsec_' is not base64") from None
    else:
        key = secret.encode()
    if not key:
        raise ValueError("the signing secret is empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, the exact bytes sent."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, msg_id, timestamp, body),
    }
