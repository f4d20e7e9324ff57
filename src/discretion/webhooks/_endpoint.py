"""Where events go: a webhook endpoint, its secret's variable and its filters.

An endpoint is written as one line, which `discretion serve --webhook` takes and the settings
hand to every worker:

```
https://hooks.acme.test/discretion events=approval.opened roles=tier2,finance secret-env=ACME_HOOK
```

The URL first, then any of `events=` (event types, comma-separated; all by default), `roles=`
(only cases arriving for these roles: applies to the events in `ROLE_EVENTS`),
`secret-env=` (the environment variable holding the signing secret, `DISCRETION_WEBHOOK_SECRET`
by default) and `name=` (the endpoint's id in the delivery table; derived from the URL by
default). The secret itself never appears in the line, on a command line or in the settings.

An `smtp://host:port` (or `smtp+starttls://host:port`) URL sends each event as an email
instead, through the same cursor and retries: `to=` (addresses, comma-separated; required),
`from=` (the sender; `discretion@` this host's name by default) and `user=` (log in as this
user, with the password in `secret-env`). Without `events=`, a mail endpoint is sent only the
events that bring a case to a role (`ROLE_EVENTS`): one email per
decision would be noise.

```
smtp://mail.acme.test:25 to=tier2-desk@acme.test roles=tier2
```
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from discretion.errors import ConfigurationError
from discretion.webhooks._events import EVENT_TYPES, ROLE_EVENTS, Event

__all__ = ["DEFAULT_SECRET_ENV", "MIN_SECRET_LENGTH", "WebhookEndpoint"]

DEFAULT_SECRET_ENV = "DISCRETION_WEBHOOK_SECRET"
"""The environment variable an endpoint's signing secret is read from, unless it names another."""
MIN_SECRET_LENGTH = 16
"""A shorter secret is refused: it could be guessed from signatures."""

_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_OPTIONS = ("events", "roles", "secret-env", "name", "to", "from", "user")
_HTTP = ("http", "https")
_MAIL = ("smtp", "smtp+starttls")


def _items(spec: str, key: str, value: str) -> frozenset[str]:
    items = frozenset(item.strip() for item in value.split(",") if item.strip())
    if not items:
        raise ConfigurationError(f"webhook {spec!r}: {key}= lists nothing; name at least one")
    return items


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEndpoint:
    """A URL that receives signed events, and which of them.

    Raises:
        ConfigurationError: the URL is not http(s), an event type is unknown, or a name or
            variable is malformed.
    """

    url: str
    """Where events are POSTed."""
    events: frozenset[str] | None = None
    """The event types it receives; every type when None."""
    roles: frozenset[str] | None = None
    """Only cases arriving for these roles (the events of `ROLE_EVENTS`); None: all."""
    secret_env: str = DEFAULT_SECRET_ENV
    """The environment variable holding its signing secret."""
    name: str | None = None
    """Its id in the delivery table; derived from the URL when None."""
    to: frozenset[str] | None = None
    """For a mail endpoint: the addresses notices go to."""
    sender: str | None = None
    """For a mail endpoint: the `From` address; `discretion@` this host when None."""
    user: str | None = None
    """For a mail endpoint: log in as this user, with the password in `secret_env`."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in (*_HTTP, *_MAIL) or not parts.hostname:
            raise ConfigurationError(
                f"webhook {self.url!r}: write an http(s) URL, such as"
                " https://hooks.example.com/discretion, or smtp://host:port for email"
            )
        if self.is_mail and not self.to:
            raise ConfigurationError(
                f"webhook {self.url!r}: an smtp endpoint needs to=ADDRESS[,ADDRESS...]"
            )
        if not self.is_mail and (self.to or self.sender or self.user):
            raise ConfigurationError(
                f"webhook {self.url!r}: to=, from= and user= are for smtp:// endpoints"
            )
        for address in sorted(self.to or ()) + ([self.sender] if self.sender else []):
            if "@" not in address.strip("@"):
                raise ConfigurationError(
                    f"webhook {self.url!r}: {address!r} is not an email address"
                )
        unknown = sorted((self.events or frozenset()) - set(EVENT_TYPES))
        if unknown:
            raise ConfigurationError(
                f"webhook {self.url!r}: unknown event type {', '.join(unknown)}; known:"
                f" {', '.join(EVENT_TYPES)}"
            )
        if not _VARIABLE.match(self.secret_env):
            raise ConfigurationError(
                f"webhook {self.url!r}: secret-env={self.secret_env!r} is not an environment"
                " variable name"
            )
        if self.name is not None and not _NAME.match(self.name):
            raise ConfigurationError(
                f"webhook {self.url!r}: name={self.name!r}: use 1 to 64 letters, digits, '_',"
                " '.' or '-'"
            )

    @property
    def is_mail(self) -> bool:
        """Whether events go out as email (`smtp://`) rather than as signed POSTs."""
        return urlsplit(self.url).scheme in _MAIL

    @property
    def id(self) -> str:
        """Its key in the delivery table: `name`, or `wh_` and a digest of the URL."""
        if self.name is not None:
            return self.name
        return "wh_" + hashlib.sha256(self.url.encode()).hexdigest()[:24]

    @classmethod
    def parse(cls, spec: str) -> WebhookEndpoint:
        """An endpoint from its one-line form (see the module's docs).

        Raises:
            ConfigurationError: the line is malformed; the message says where.
        """
        words = spec.split()
        if not words:
            raise ConfigurationError("webhook: empty; write a URL, then any options")
        options: dict[str, str] = {}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            if not sep or key not in _OPTIONS:
                raise ConfigurationError(
                    f"webhook {spec!r}: {word!r} is not an option; write"
                    f" {', '.join(o + '=...' for o in _OPTIONS)}"
                )
            if key in options:
                raise ConfigurationError(f"webhook {spec!r}: {key}= is given twice")
            options[key] = value
        return cls(
            url=words[0],
            events=_items(spec, "events", options["events"]) if "events" in options else None,
            roles=_items(spec, "roles", options["roles"]) if "roles" in options else None,
            secret_env=options.get("secret-env", DEFAULT_SECRET_ENV),
            name=options.get("name"),
            to=_items(spec, "to", options["to"]) if "to" in options else None,
            sender=options.get("from"),
            user=options.get("user"),
        )

    def spec(self) -> str:
        """Its one-line form, which `parse` reads back."""
        words = [self.url]
        if self.events is not None:
            words.append("events=" + ",".join(sorted(self.events)))
        if self.roles is not None:
            words.append("roles=" + ",".join(sorted(self.roles)))
        if self.secret_env != DEFAULT_SECRET_ENV:
            words.append(f"secret-env={self.secret_env}")
        if self.name is not None:
            words.append(f"name={self.name}")
        if self.to is not None:
            words.append("to=" + ",".join(sorted(self.to)))
        if self.sender is not None:
            words.append(f"from={self.sender}")
        if self.user is not None:
            words.append(f"user={self.user}")
        return " ".join(words)

    def secret(self, environ: Mapping[str, str]) -> str:
        """Its signing secret (for mail, its password, if it logs in), from `environ`.

        Raises:
            ConfigurationError: the variable is unset or too short.
        """
        value = environ.get(self.secret_env, "")
        if self.is_mail:
            if self.user is not None and not value:
                raise ConfigurationError(
                    f"webhook {self.url!r}: {self.secret_env} is not set; set it to the SMTP"
                    f" password of {self.user!r}"
                )
            return value
        if len(value) < MIN_SECRET_LENGTH:
            state = "is not set" if not value else f"is shorter than {MIN_SECRET_LENGTH}"
            raise ConfigurationError(
                f"webhook {self.url!r}: {self.secret_env} {state}; set it to a random secret"
                f" of at least {MIN_SECRET_LENGTH} characters, shared with the receiver"
                " (python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        return value

    def wants(self, event: Event) -> bool:
        """Whether this endpoint receives `event`."""
        types = self.events
        if types is None and self.is_mail:
            types = frozenset(ROLE_EVENTS)
        if types is not None and event.type not in types:
            return False
        if self.roles is not None and event.type in ROLE_EVENTS:
            return event.data.get("role") in self.roles
        return True
