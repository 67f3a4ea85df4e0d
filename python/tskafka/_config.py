"""``tskafka.Config``: librdkafka properties from a dict, keyword arguments,
environment variables or a Confluent-style ``config.ini``, with secrets
hidden in every repr."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from . import _tskafka
from .exceptions import ConfigError

#: Sections of a config.ini that overlay ``[default]`` for one kind of client.
CLIENT_SECTIONS = ("producer", "consumer", "admin")

#: Environment variables that are not spelled like their property.
_ENV_ALIASES = {"bootstrap": "bootstrap.servers", "log.level": "log_level"}


def _value(key: str, value: Any) -> str:
    """A property value as the string librdkafka wants."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)  # type: ignore[return-value]
    if isinstance(value, (list, tuple)):
        return ",".join(_value(key, v) for v in value)
    raise ConfigError(
        f"config property {key!r}: give a str, int, float, bool or a list of them, "
        f"not {type(value).__name__}"
    )


def _properties(items: Iterable[tuple[Any, Any]]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, value in items:
        if not isinstance(key, str):
            raise ConfigError(f"config keys are librdkafka property names (str), got {key!r}")
        out[key] = None if value is None else _value(key, value)
    return out


def _shown(props: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k!r}: {_tskafka.shown_value(k, v)!r}" for k, v in props.items()) + "}"


class Config(Mapping[str, str]):
    """librdkafka properties (dotted keys, string values), accepted as
    ``config=`` by Producer, Consumer, Admin, :func:`tskafka.replay` and the
    command line's ``--config``.

    - ``Config({"bootstrap.servers": "b:9092", "linger.ms": 5})``, or
      keyword arguments with ``_`` for ``.``:
      ``Config(bootstrap_servers="b:9092", sasl_password=...)``.
    - ``Config.from_ini("config.ini")``: a Confluent-style file.
    - ``Config.from_env()``: ``TSKAFKA_SASL_PASSWORD`` -> ``sasl.password``.
    - ``a | b`` (or ``a.merged(b)``): ``b`` wins; a value of None removes a key.

    Values are kept as strings (True -> "true", 5 -> "5", lists joined with
    commas). The ``[producer]``, ``[consumer]`` and ``[admin]`` sections of a
    file are kept apart and overlaid by the client they name
    (``section("consumer")``); properties merged in later win over them.
    Secret values (``sasl.password``, ``ssl.key.password``, ``ssl.key.pem``,
    ...) show as ``***`` in ``repr``/``str``.
    """

    __slots__ = ("_props", "_sections")
    _props: dict[str, str]
    _sections: dict[str, dict[str, str]]

    def __init__(
        self,
        properties: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        /,
        **kwargs: Any,
    ) -> None:
        if isinstance(properties, Config):
            props: dict[str, str | None] = dict(properties._props)
            sections = {k: dict(v) for k, v in properties._sections.items()}
        else:
            items = properties.items() if isinstance(properties, Mapping) else (properties or ())
            props, sections = _properties(items), {}
        props.update(_properties((k.replace("_", "."), v) for k, v in kwargs.items()))
        self._props = {k: v for k, v in props.items() if v is not None}
        self._sections = sections

    @classmethod
    def _make(cls, props: dict[str, str], sections: dict[str, dict[str, str]]) -> Config:
        config = cls.__new__(cls)
        config._props = props
        config._sections = {name: s for name, s in sections.items() if s}
        return config

    @classmethod
    def from_ini(cls, path: str | os.PathLike[str], section: str | None = None) -> Config:
        """A Confluent-style ``config.ini`` (or a plain ``key=value``
        librdkafka properties file): ``[default]`` holds the shared
        properties; ``[producer]``, ``[consumer]`` and ``[admin]`` are kept
        for the client each names, or, with ``section=``, that one is
        overlaid now and the others dropped. Other sections (e.g.
        ``[schema-registry]``) are ignored."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise ConfigError(f"cannot read config file {path!r}: it does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise ConfigError(f"cannot read config file {path!r}: {why}") from None
        try:
            sections = _tskafka.read_ini_sections(text)
        except ConfigError as e:
            raise ConfigError(f"config file {path!r} {e}") from None
        props = sections.pop("default", {})
        if section is not None:
            props.update(sections.get(section, {}))
            return cls._make(props, {})
        return cls._make(props, {k: v for k, v in sections.items() if k in CLIENT_SECTIONS})

    @classmethod
    def from_env(cls, prefix: str = "TSKAFKA_", environ: Mapping[str, str] | None = None) -> Config:
        """Properties from environment variables named ``prefix`` + the
        property in capitals with ``_`` for ``.``: ``TSKAFKA_SASL_PASSWORD``
        -> ``sasl.password``, ``TSKAFKA_BOOTSTRAP_SERVERS`` (or
        ``TSKAFKA_BOOTSTRAP``) -> ``bootstrap.servers``; ``__`` stands for a
        literal ``_`` (``TSKAFKA_LOG_LEVEL`` -> ``log_level``). Empty
        variables are ignored."""
        env = os.environ if environ is None else environ
        props: dict[str, str] = {}
        for name, value in env.items():
            if not name.upper().startswith(prefix.upper()) or not value:
                continue
            key = (
                name[len(prefix) :].lower().replace("__", "\0").replace("_", ".").replace("\0", "_")
            )
            if key:
                props[_ENV_ALIASES.get(key, key)] = value
        return cls._make(props, {})

    def section(self, name: str | None) -> Config:
        """These properties overlaid with the ``[name]`` section of the file
        they came from, for a client of that kind (sections dropped)."""
        props = dict(self._props)
        if name is not None:
            props.update(self._sections.get(name, {}))
        return Config._make(props, {})

    @property
    def sections(self) -> dict[str, dict[str, str]]:
        """The client sections kept from a file: ``{"consumer": {...}}``."""
        return {k: dict(v) for k, v in self._sections.items()}

    def merged(self, other: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Config:
        """A new Config with ``other``'s properties (and ``kwargs``, ``_`` for
        ``.``) on top: they win over this one's, client sections included.
        A value of None removes the property."""
        top = Config(other) if other is not None else Config()
        extra = _properties((k.replace("_", "."), v) for k, v in kwargs.items())
        given: dict[str, str | None] = {**top._props, **extra}
        if other is not None and not isinstance(other, Config):
            given.update({k: None for k, v in other.items() if v is None})
        props = {k: v for k, v in self._props.items() if k not in given}
        props.update({k: v for k, v in given.items() if v is not None})
        sections = {
            name: {k: v for k, v in s.items() if k not in given}
            for name, s in self._sections.items()
        }
        for name, s in top._sections.items():
            sections.setdefault(name, {}).update(s)
        return Config._make(props, sections)

    def __or__(self, other: Mapping[str, Any]) -> Config:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.merged(other)

    def __ror__(self, other: Mapping[str, Any]) -> Config:
        if not isinstance(other, Mapping):
            return NotImplemented
        return Config(other).merged(self)

    def to_dict(self, section: str | None = None) -> dict[str, str]:
        """A plain dict (for confluent-kafka, say), with the client section
        ``section`` overlaid. It holds the secrets in clear."""
        return dict(self.section(section)._props)

    def __getitem__(self, key: str) -> str:
        return self._props[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._props)

    def __len__(self) -> int:
        return len(self._props)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Config):
            return self._props == other._props and self._sections == other._sections
        if isinstance(other, Mapping):
            return not self._sections and self._props == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        sections = "".join(f", {name}={_shown(s)}" for name, s in self._sections.items())
        return f"Config({_shown(self._props)}{sections})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        return (Config._make, (dict(self._props), self.sections))


ConfigLike = Config | Mapping[str, Any] | str | os.PathLike[str] | None


def resolve(config: ConfigLike, section: str | None) -> Config | None:
    """``config`` (a Config, dict or config.ini path) for one kind of client."""
    if config is None:
        return None
    if isinstance(config, Config):
        return config.section(section)
    if isinstance(config, Mapping):
        return Config(config)
    if isinstance(config, (str, os.PathLike)):
        return Config.from_ini(config, section)
    raise ConfigError(
        f"config must be a tskafka.Config, a dict of librdkafka properties or a config.ini "
        f"path, not {type(config).__name__}"
    )


def native(config: ConfigLike, section: str | None) -> dict[str, str] | None:
    """What the native clients take: a plain dict, or None."""
    resolved = resolve(config, section)
    return None if resolved is None else resolved.to_dict()


def load_config(config: ConfigLike, section: str | None = None) -> dict[str, str] | None:
    """librdkafka properties as a dict: from a Config or dict, or from a
    Confluent-style ``config.ini`` (its ``[default]`` section overlaid with
    ``section``). See :class:`Config`."""
    return native(config, section)
