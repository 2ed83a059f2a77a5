"""Keyed-hash pseudonyms for authors.

The key comes from the environment (``FRAMEWATCH_PSEUDONYM_KEY`` unless configured otherwise).
When it is absent, a random key is created once in a file beside the warehouse (mode 0600),
never inside it, so pseudonyms stay stable across runs but cannot be reversed from the DB.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)


class Pseudonymizer:
    def __init__(self, key: bytes | None, enabled: bool = True):
        self._key = key
        self.enabled = enabled

    def __call__(self, platform: str, site: str, author: str | None) -> str | None:
        if author is None or author == "":
            return None
        if not self.enabled:
            return author
        digest = hmac.new(self._key or b"", f"{platform}\x1f{site}\x1f{author}".encode(), hashlib.sha256)
        return "a_" + digest.hexdigest()[:16]


def load_key(secret_env: str, warehouse_path: Path) -> bytes:
    value = os.environ.get(secret_env)
    if value:
        return value.encode()
    key_file = warehouse_path.with_name(warehouse_path.name + ".pseudonym-key")
    if key_file.exists():
        return key_file.read_bytes().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    log.warning("%s is not set: created a pseudonym key in %s (keep it private)", secret_env, key_file)
    return key


def pseudonymizer_for(settings) -> Pseudonymizer:
    privacy = settings.privacy
    if not privacy.pseudonymize_authors:
        return Pseudonymizer(None, enabled=False)
    return Pseudonymizer(load_key(privacy.secret_env, settings.warehouse_path))
