"""The stack's generated secrets, kept under ``DATA_DIR/secrets/`` (mode 0600, created once
and reused on later starts so clients keep working across restarts):

- ``api_key``         the public API key (``DATA_DIR/api_key`` for compatibility);
- ``ranking_tokens``  ``name:scope:token`` lines the ranking service accepts;
- ``gateway_token``   the gateway's read-scope token; ``ingest_token`` the write-scope one;
- ``redis_url``       ``redis://ranking:<password>@host:port/0`` for the embedded Valkey;
- ``valkey.acl``      Valkey's ACL: ``default`` off, user ``ranking`` limited to the cache's keys
  and commands;
- ``cache_hmac_key``  the key the ranking service signs cache entries with;
- ``gateway_lease_key`` the key (derived from it, one-way) the gateway checks ranking's
  generation lease with; ``gateway_redis_url`` the gateway's Valkey user (its own keys, the
  lease read-only): the gateway's result cache, ``homesearch/edge_cache.py``;
- ``triton_admin``    header value guarding Triton's admin APIs (no one is given it).

Children receive *paths* to these files in the environment (``*_FILE``), never the secrets
on their command line (which any local user can read in ``ps``).
"""

from __future__ import annotations

import os
import secrets as _secrets
from dataclasses import dataclass
from pathlib import Path

# The commands homesearch's cache uses (services/ranking/cache.py) plus what a client sends
# on connect; nothing else (no KEYS, FLUSHALL, CONFIG, DEBUG, MODULE ...).
VALKEY_CACHE_COMMANDS = ("get", "set", "eval", "evalsha", "ping", "hello", "client|setinfo", "select")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _load_or_create(path: Path, make) -> str:
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    value = make()
    _write_private(path, value + "\n")
    return value


@dataclass
class StackSecrets:
    dir: Path
    gateway_token: str
    ingest_token: str
    valkey_password: str
    cache_hmac_key: str
    triton_admin: str

    @classmethod
    def load_or_create(cls, data_dir: Path) -> "StackSecrets":
        d = data_dir / "secrets"
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(d, 0o700)
        tok = lambda prefix: lambda: prefix + _secrets.token_urlsafe(32)  # noqa: E731
        s = cls(
            dir=d,
            gateway_token=_load_or_create(d / "gateway_token", tok("hsr_")),
            ingest_token=_load_or_create(d / "ingest_token", tok("hsw_")),
            valkey_password=_load_or_create(d / "valkey_password", tok("")),
            cache_hmac_key=_load_or_create(d / "cache_hmac_key", tok("")),
            triton_admin=_load_or_create(d / "triton_admin", tok("")),
        )
        _write_private(d / "ranking_tokens", f"gateway:read:{s.gateway_token}\ningest:write:{s.ingest_token}\n")
        from homesearch.edge_cache import derive_lease_key

        _write_private(d / "gateway_lease_key", derive_lease_key(s.cache_hmac_key).hex() + "\n")
        return s

    def path(self, name: str) -> Path:
        return self.dir / name

    def write_redis(self, host: str, port: int) -> str:
        """Writes the ACL file and the credentialed URL; returns the URL file's path."""
        cmds = " ".join(f"+{c}" for c in VALKEY_CACHE_COMMANDS)
        gw_password = _load_or_create(self.path("gateway_valkey_password"), lambda: _secrets.token_urlsafe(32))
        _write_private(self.path("valkey.acl"),
                       "user default off\n"
                       f"user ranking on >{self.valkey_password} ~hs:* resetchannels -@all {cmds}\n"
                       f"user gateway on >{gw_password} ~hs:gw:* %R~hs:lease:* resetchannels -@all {cmds} "
                       "+eval_ro +evalsha_ro\n")
        _write_private(self.path("redis_url"), f"redis://ranking:{self.valkey_password}@{host}:{port}/0\n")
        _write_private(self.path("gateway_redis_url"), f"redis://gateway:{gw_password}@{host}:{port}/0\n")
        return str(self.path("redis_url"))


def load_or_create_api_key(data_dir: Path) -> tuple[str, bool]:
    """The public API key in ``DATA_DIR/api_key`` and whether it was just created."""
    path = data_dir / "api_key"
    created = not (path.exists() and path.read_text().strip())
    key = _load_or_create(path, lambda: "hs_" + _secrets.token_urlsafe(24))
    return key, created


def main(argv: list[str] | None = None) -> int:
    """``python -m homesearch.stack.secrets --env``: fresh internal credentials as shell
    ``export`` lines for docker compose (see docker-compose.yml); nothing is stored."""
    import argparse
    import shlex

    p = argparse.ArgumentParser(prog="python -m homesearch.stack.secrets",
                                description="Print fresh internal credentials as export lines (compose secrets).")
    p.add_argument("--env", action="store_true", required=True, help="print shell export lines")
    p.add_argument("--redis-host", default="redis:6379", help="host:port in the Redis URL (default redis:6379)")
    args = p.parse_args(argv)
    tok = lambda prefix: prefix + _secrets.token_urlsafe(32)  # noqa: E731
    read, write, redis_pw = tok("hsr_"), tok("hsw_"), tok("")
    values = {
        "HOMESEARCH_RANKING_SERVICE_TOKENS": f"gateway:read:{read},indexer:write:{write}",
        "HOMESEARCH_GATEWAY_RANKING_TOKEN": read,
        "HOMESEARCH_SERVICE_TOKEN": write,
        "HOMESEARCH_RANKING_CACHE_HMAC_KEY": tok(""),
        "HOMESEARCH_REDIS_PASSWORD": redis_pw,
        "HOMESEARCH_RANKING_REDIS_URL": f"redis://ranking:{redis_pw}@{args.redis_host}/0",
    }
    for k, v in values.items():
        print(f"export {k}={shlex.quote(v)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
