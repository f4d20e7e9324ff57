"""The settings a guard is built from, and `build_guard`: the only code that builds one from them.

Every front-end turns its options into one `Settings`: the command line from its flags, each
worker of `discretion serve --workers N` from the environment its parent wrote with
`Settings.to_environment()`. So `check`, the approvals commands, `serve` and every worker build
the same guard from the same settings, and a new setting reaches all of them at once.

```python
settings = Settings(pack=Path("acme/pack"), db="sqlite:///discretion.db",
                    judge="openai:gpt-4.1-mini", context_factory="acme.crm:facts")
guard = build_guard(settings)
```
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from discretion.errors import ConfigurationError

if TYPE_CHECKING:
    # Loaded by the functions that build: the command line reads `DEFAULT_DB` and `Settings`
    # at start-up, and builds a guard only in the commands that decide.
    from discretion.context import ContextProvider
    from discretion.guard import Guard
    from discretion.judge import Judge
    from discretion.webhooks import Deliverer, WebhookEndpoint

__all__ = [
    "CONTEXT_NAMES",
    "DEFAULT_DB",
    "ENVIRONMENT",
    "JUDGE_SCHEMES",
    "Settings",
    "build_deliverer",
    "build_guard",
    "load_object",
]

DEFAULT_DB = "sqlite:///discretion.db"
"""The database a guard records to when no URL is given."""

CONTEXT_NAMES = ("cases.sql", "cases.db", "context.json")
"""The facts files looked for beside the pack (then one folder up) when no context is given."""

JUDGE_SCHEMES = {"openai": "openai:MODEL"}
"""The LLM judges a `Settings.judge` can name, each with the form it is written in."""

_OPENAI_EXTRA = ("openai", "tenacity", "jinja2")
"""The packages of `pip install 'discretion[openai]'`, which the LLM judge needs."""

ENVIRONMENT = {
    "pack": "DISCRETION_PACK",
    "db": "DISCRETION_DB",
    "context": "DISCRETION_CONTEXT",
    "context_factory": "DISCRETION_CONTEXT_FACTORY",
    "judge": "DISCRETION_JUDGE",
    "now": "DISCRETION_NOW",
    "shadow": "DISCRETION_SHADOW",
    "create_schema": "DISCRETION_CREATE_SCHEMA",
    "secure_cookies": "DISCRETION_SECURE_COOKIES",
    "concurrency": "DISCRETION_CONCURRENCY",
    "webhooks": "DISCRETION_WEBHOOKS",
    "public_url": "DISCRETION_PUBLIC_URL",
    "webhook_every_s": "DISCRETION_WEBHOOK_EVERY",
    "open_metrics": "DISCRETION_OPEN_METRICS",
}
"""The environment variable of each setting, as `to_environment` writes them.

The judge's key and endpoint are not settings: `OPENAI_API_KEY` (or `DISCRETION_JUDGE_API_KEY`)
and `DISCRETION_JUDGE_BASE_URL` (or `OPENAI_BASE_URL`) are read from the environment by the
judge itself, so a key never passes through a command line. Likewise a webhook's signing secret
is read by each process from the variable its endpoint names (`DISCRETION_WEBHOOK_SECRET` by
default), never written into the settings.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """What a guard is built from, and how the server serves it.

    Raises:
        ConfigurationError: a setting is malformed (the judge, the factory, `now`, `concurrency`)
            or both a context file and a context factory are given.
    """

    pack: Path
    """The policy pack: a YAML file or a folder of them."""
    db: str = DEFAULT_DB
    """The database URL: `sqlite:///path.db` or `postgresql://...`."""
    context: Path | None = None
    """Facts: a `.json` file, a `.sql` case script or a SQLite case database. When it and
    `context_factory` are both absent, `cases.sql`, `cases.db` or `context.json` beside the pack
    (or one folder up) is used, else no facts at all."""
    context_factory: str | None = None
    """`module:callable`: a callable that takes no arguments and returns a `ContextProvider`,
    imported from the Python path (a CRM, an order service, ...). Instead of `context`."""
    judge: str | None = None
    """The LLM judge, as `openai:MODEL`; None for the grounded judge alone. The key and base URL
    come from the environment (see `ENVIRONMENT`)."""
    now: datetime | None = None
    """Decide as of this aware time instead of the clock (replays, tests)."""
    shadow: Path | None = None
    """A candidate pack to decide in shadow beside `pack` (see `discretion.shadow`)."""
    create_schema: bool = True
    """Create the database and its tables when missing. When False the database must exist: a
    mistyped SQLite path is an error rather than a new, empty ledger."""
    secure_cookies: bool = False
    """The server sends its UI cookies over HTTPS only (behind TLS)."""
    concurrency: int | None = None
    """Decisions each server process works on at once; `create_app`'s default when None."""
    webhooks: tuple[WebhookEndpoint, ...] = ()
    """Endpoints the server sends signed events to (`discretion.webhooks`)."""
    public_url: str | None = None
    """The server's address as people reach it (`https://discretion.acme.test`): events link
    to the desk's case page under it; links are paths when None."""
    webhook_every_s: float = 5.0
    """Seconds between the server's webhook passes (each also expires overdue approvals)."""
    open_metrics: bool = False
    """Serve `/metrics` without a token (a scraper on a network no agent reaches): budget use
    there tells each limit. A person's bearer token is asked for when False."""

    def __post_init__(self) -> None:
        if self.context is not None and self.context_factory is not None:
            raise ConfigurationError(
                f"settings: give a context file ({self.context}) or a context factory"
                f" ({self.context_factory!r}), not both"
            )
        if self.context_factory is not None:
            module, sep, name = self.context_factory.partition(":")
            if not sep or not module or not name:
                raise ConfigurationError(
                    f"context factory {self.context_factory!r}: write module:callable, such as"
                    " acme.crm:facts"
                )
        if self.judge is not None:
            _judge_parts(self.judge)
        if self.now is not None and self.now.tzinfo is None:
            raise ConfigurationError(
                f"settings: now {self.now.isoformat()} needs a UTC offset, such as +00:00"
            )
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(
                    f"settings: public URL {self.public_url!r}: write the server's http(s)"
                    " address, such as https://discretion.acme.test"
                )
        if not self.webhook_every_s > 0:
            raise ConfigurationError(
                f"settings: webhook passes need a positive interval, not {self.webhook_every_s} s"
            )
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigurationError(
                f"settings: concurrency must be at least 1 decision at once, not {self.concurrency}"
            )

    def to_environment(self) -> dict[str, str]:
        """Every setting as the environment variables `from_environment` reads back.

        Each variable is written, empty for an absent setting, so values left in the
        environment by an earlier run never leak into these settings. Paths are made absolute.
        """
        return {
            ENVIRONMENT["pack"]: str(self.pack.resolve()),
            ENVIRONMENT["db"]: self.db,
            ENVIRONMENT["context"]: str(self.context.resolve()) if self.context else "",
            ENVIRONMENT["context_factory"]: self.context_factory or "",
            ENVIRONMENT["judge"]: self.judge or "",
            ENVIRONMENT["now"]: self.now.isoformat() if self.now else "",
            ENVIRONMENT["shadow"]: str(self.shadow.resolve()) if self.shadow else "",
            ENVIRONMENT["create_schema"]: "1" if self.create_schema else "0",
            ENVIRONMENT["secure_cookies"]: "1" if self.secure_cookies else "0",
            ENVIRONMENT["concurrency"]: str(self.concurrency) if self.concurrency else "",
            ENVIRONMENT["webhooks"]: "\n".join(endpoint.spec() for endpoint in self.webhooks),
            ENVIRONMENT["public_url"]: self.public_url or "",
            ENVIRONMENT["webhook_every_s"]: repr(self.webhook_every_s),
            ENVIRONMENT["open_metrics"]: "1" if self.open_metrics else "0",
        }

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in the environment (`os.environ` when absent), as `to_environment` wrote.

        Raises:
            ConfigurationError: the pack is not set, or a variable holds something unreadable.
        """
        from discretion.webhooks import WebhookEndpoint

        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            return env.get(ENVIRONMENT[name]) or None

        pack = text("pack")
        if pack is None:
            raise ConfigurationError(
                f"{ENVIRONMENT['pack']} is not set: name the policy pack there (`discretion"
                " serve` sets it for its workers)"
            )
        context = text("context")
        shadow = text("shadow")
        now = text("now")
        concurrency = text("concurrency")
        hooks = text("webhooks") or ""
        every = text("webhook_every_s")
        return cls(
            pack=Path(pack),
            db=text("db") or DEFAULT_DB,
            context=Path(context) if context else None,
            context_factory=text("context_factory"),
            judge=text("judge"),
            now=_read_time(ENVIRONMENT["now"], now) if now else None,
            shadow=Path(shadow) if shadow else None,
            create_schema=_read_flag(env, "create_schema", default=True),
            secure_cookies=_read_flag(env, "secure_cookies", default=False),
            concurrency=_read_count(ENVIRONMENT["concurrency"], concurrency)
            if concurrency
            else None,
            webhooks=tuple(
                WebhookEndpoint.parse(line) for line in hooks.splitlines() if line.strip()
            ),
            public_url=text("public_url"),
            webhook_every_s=_read_seconds(ENVIRONMENT["webhook_every_s"], every) if every else 5.0,
            open_metrics=_read_flag(env, "open_metrics", default=False),
        )


def build_guard(settings: Settings) -> Guard:
    """The guard the settings describe: its pack, store, context, judge, clock and shadow pack.

    Everything that can be wrong with the settings is found here, before the guard decides
    anything: a pack that does not load, a missing facts file or factory, a judge whose extra is
    not installed.

    Raises:
        ConfigurationError: saying which setting is wrong and what to do (`PolicyError` for a
            pack that does not load).
        StoreError: the database cannot be opened.
    """
    from discretion.guard import Guard
    from discretion.policy import load_pack
    from discretion.store import SqlStore

    pack = load_pack(settings.pack)
    shadow = load_pack(settings.shadow) if settings.shadow is not None else None
    judge = _open_judge(settings.judge)
    moment = settings.now
    with ExitStack() as cleanup:
        # A guard that fails to build closes what it opened: a case database, the store.
        context = _open_context(settings)
        cleanup.callback(_close, context)
        store = SqlStore(settings.db, create=settings.create_schema)
        cleanup.callback(store.close)
        guard = Guard(
            pack,
            store=store,
            context=context,
            clock=(lambda: moment) if moment is not None else None,
            judge=judge,
            shadow=shadow,
        )
        cleanup.pop_all()
    return guard


def build_deliverer(settings: Settings, guard: Guard) -> Deliverer | None:
    """The webhook deliverer the settings describe over the guard's store; None without endpoints.

    Each endpoint's `roles` must be roles of the guard's pack that people hold, and its secret
    must be set in this process's environment.

    Raises:
        ConfigurationError: a role is unknown or held by AI actors, a secret is missing, or the
            `webhooks` extra is not installed.
    """
    if not settings.webhooks:
        return None
    from discretion.webhooks import Deliverer

    pack = guard.pack
    # A team beside the ladder is told of the cases sent to it too.
    people = [role.id for role in pack.roles if not role.is_ai]
    for endpoint in settings.webhooks:
        for role_id in sorted(endpoint.roles or ()):
            if role_id not in people:
                raise ConfigurationError(
                    f"webhook {endpoint.url!r}: roles={role_id!r} is not a role people hold in"
                    f" pack {pack.name!r}; roles: {', '.join(people)}"
                )
    return Deliverer(guard.store, settings.webhooks, public_url=settings.public_url)


def _close(thing: object) -> None:
    close = getattr(thing, "close", None)
    if callable(close):
        close()


def _find_context(pack: Path) -> Path | None:
    folder = pack if pack.is_dir() else pack.parent
    for base in (folder, folder.parent):
        for name in CONTEXT_NAMES:
            if (base / name).exists():
                return base / name
    return None


def _open_context(settings: Settings) -> ContextProvider:
    from discretion.context import JsonContextProvider, SqliteCaseStore, StaticContextProvider

    if settings.context_factory is not None:
        return _call_factory(settings.context_factory)
    path = settings.context or _find_context(settings.pack)
    if path is None:
        return StaticContextProvider()
    if path.suffix == ".json":
        return JsonContextProvider(path)
    if path.suffix == ".sql":
        return SqliteCaseStore.from_sql(path)
    return SqliteCaseStore.open(path)


def load_object(spec: str, *, what: str) -> Any:
    """The object a `module:attribute` spec names (a context factory, a list of tools).

    Raises:
        ConfigurationError: the spec is malformed, the module cannot be imported, or it has no
            such attribute; the message names `what` and the fix.
    """
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise ConfigurationError(f"{what} {spec!r}: write module:attribute, such as acme.crm:facts")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise ConfigurationError(
                f"{what} {spec!r}: there is no module {module_name!r}; install it or"
                " put its folder on PYTHONPATH"
            ) from exc
        raise ConfigurationError(
            f"{what} {spec!r}: module {module_name!r} cannot be imported: {exc}"
        ) from exc
    except ImportError as exc:
        raise ConfigurationError(
            f"{what} {spec!r}: module {module_name!r} cannot be imported: {exc}"
        ) from exc
    found: Any = getattr(module, name, None)
    if found is None:
        raise ConfigurationError(f"{what} {spec!r}: module {module_name!r} has no {name!r}")
    return found


def _call_factory(spec: str) -> ContextProvider:
    name = spec.partition(":")[2]
    factory: Any = load_object(spec, what="context factory")
    if not callable(factory):
        raise ConfigurationError(
            f"context factory {spec!r}: {name!r} is a {type(factory).__name__}, not a callable"
            " that returns a context provider"
        )
    provider: ContextProvider = factory()
    if not callable(getattr(provider, "fetch", None)):
        raise ConfigurationError(
            f"context factory {spec!r} returned a {type(provider).__name__}, which has no"
            " fetch(request) method: return a ContextProvider (see discretion.context)"
        )
    return provider


def _judge_parts(spec: str) -> tuple[str, str]:
    scheme, sep, model = spec.partition(":")
    example = "openai:gpt-4.1-mini"
    if scheme not in JUDGE_SCHEMES:
        known = ", ".join(JUDGE_SCHEMES.values())
        raise ConfigurationError(
            f"judge {spec!r}: unknown judge {scheme!r}; write one of {known}, such as {example}"
        )
    if not sep or not model.strip():
        raise ConfigurationError(f"judge {spec!r}: name the model, such as {example}")
    return scheme, model


def _open_judge(spec: str | None) -> Judge | None:
    if spec is None:
        return None
    _, model = _judge_parts(spec)
    for package in _OPENAI_EXTRA:
        try:
            importlib.import_module(package)
        except ImportError as exc:
            raise ConfigurationError(
                f"judge {spec!r} needs the {package} package: pip install 'discretion[openai]'"
            ) from exc
    from discretion.judge import OpenAIJudge

    return OpenAIJudge(model)


def _read_flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    variable = ENVIRONMENT[name]
    value = env.get(variable) or ""
    if value == "":
        return default
    if value not in ("0", "1"):
        raise ConfigurationError(f"{variable}={value!r}: write 1 or 0")
    return value == "1"


def _read_count(variable: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigurationError(f"{variable}={value!r} is not a whole number") from None


def _read_seconds(variable: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigurationError(f"{variable}={value!r} is not a number of seconds") from None


def _read_time(variable: str, value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(
            f"{variable}={value!r} is not an ISO 8601 time such as 2026-11-26T12:00:00+00:00"
        ) from None
