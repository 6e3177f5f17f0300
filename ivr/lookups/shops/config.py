"""Read a shop back-end's configuration file, checking all of it at once.

The format is documented in docs/configuration.md.  As with flow files,
every problem is collected and reported with its position, one per line::

    shop.yaml:7:5: error: fields.status: unknown status 'shiped' for 'fulfilled'; expected one of ... [unknown-status]

Secrets never live in the file: ``auth.secret_env`` names the environment
variable that holds it, and a key that looks like a secret is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, Mapping
from urllib.parse import urlsplit

from ivr.flow.problems import Problem, YamlProblems
from ivr.flow.yamlcheck import BAD, YamlChecker, read_text, type_name
from ivr.i18n import N_, _
from ivr.lookups.orders import ORDER_STATUSES
from ivr.lookups.shops.mapping import (
    DATE_FIELDS,
    FIELDS,
    REQUIRED,
    UNMAPPED,
    FieldSpec,
    PathError,
    StatusRule,
    map_key,
    parse_path,
)
from ivr.lookups.shops.mapping import (
    Mapping as OrderMapping,
)
from ivr.lookups.shops.presets import PRESETS

DEFAULT_TIMEOUT = 3.0
DEFAULT_FAILURES = 5
DEFAULT_COOLDOWN = 30.0
DEFAULT_RECENT_DAYS = 60
AUTH_SCHEMES = ("token", "bearer", "basic")
#: Placeholders each request path may use.
PLACEHOLDERS = {
    "order_by_number": {"number"},
    "orders_by_phone": {"phone", "phone_national", "phone_digits", "since"},
}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SECRET_WORDS = ("secret", "token", "password", "key")
_TOP_KEYS = ("preset", "base_url", "timeout", "recent_days", "auth", "breaker",
             "order_by_number", "orders_by_phone", "fields")


class ShopConfigError(YamlProblems):
    """The configuration file has problems; ``problems`` lists them all, sorted."""


@dataclass(frozen=True)
class Find:
    """A first request that turns the caller's phone into ids (customers,
    addresses) for the orders request: ``{found}`` in its path."""

    path: str
    items: Any           # a mapping.Path, or None for the answer itself
    value: Any           # a mapping.Path into each item
    join: str | None = None


@dataclass(frozen=True)
class Endpoint:
    path: str
    orders: Any = None   # a mapping.Path to the order(s), or None for the answer itself
    find: Find | None = None
    check_phone: bool = True


@dataclass(frozen=True)
class ShopConfig:
    """A checked configuration: everything ``HttpOrderLookups`` needs.
    ``secret`` is read from the environment, never from the file."""

    source: str
    base_url: str
    order_by_number: Endpoint
    orders_by_phone: Endpoint
    mapping: OrderMapping
    preset: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    recent_days: int = DEFAULT_RECENT_DAYS
    auth_header: str | None = None
    auth_scheme: str = "token"
    secret_env: str | None = None
    secret: str | None = field(default=None, repr=False)
    failures: int = DEFAULT_FAILURES
    cooldown: float = DEFAULT_COOLDOWN


def load_config(path, environ: Mapping[str, str] | None = None) -> ShopConfig:
    """Read and check the configuration file at ``path``; the secret comes
    from ``environ`` (default: ``os.environ``).  Raises
    :class:`ShopConfigError` listing every problem."""
    import os

    path = FilePath(path)
    text = read_text(path, ShopConfigError)
    return config_from_text(str(path), text, os.environ if environ is None else environ)


def config_from_text(source: str, text: str, environ: Mapping[str, str]) -> ShopConfig:
    """Check ``text`` as if read from the file ``source``."""
    return _Builder(source, text, environ).build()


class _Builder(YamlChecker):
    error = ShopConfigError

    def __init__(self, path: str, text: str, environ: Mapping[str, str]):
        self.path, self.source, self.environ = path, text, environ
        self.problems = []
        self.doc = None
        self.user: dict = {}

    # -- reporting ---------------------------------------------------------------
    def problem(self, path, message, code, at_key=False):
        # A value that came from the preset has no line of its own: point
        # at the 'preset' key that brought it in.
        path = tuple(path)
        if self._from_preset(path):
            pos = self.doc.pos(("preset",))
            message = _("{message} (from preset {preset!r})").format(message=message,
                                                                      preset=self.user["preset"])
        else:
            pos = self.doc.key_pos(path) if at_key else self.doc.pos(path)
        where = ".".join(str(p) for p in path)
        prefix = f"{where}: " if where else ""
        self.problems.append(Problem(self.path, pos.line, pos.column, prefix + message, code))

    def _from_preset(self, path) -> bool:
        """Whether the value at ``path`` was written by the preset, not the
        file (a file's shorthand, ``number: id``, is the file's own)."""
        if self.user.get("preset") not in PRESETS:
            return False
        value = self.user
        for step in path:
            if isinstance(value, dict) and step in value:
                value = value[step]
            elif isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
                value = value[step]
            else:
                return isinstance(value, (dict, list))
        return False

    def expect(self, path, value, kind, wanted):
        """Whether ``value`` is of ``kind``; if not, a ``wrong-type`` problem."""
        return super().expect(path, value, kind, wanted) is not BAD

    def keys(self, path, value: dict, allowed, required=()):
        self.known_fields(path, value, allowed, required, hint=_secret_hint)

    # -- building ------------------------------------------------------------------
    def build(self) -> ShopConfig:
        if not isinstance(self.parse(), dict):
            self.problem((), _("a shop configuration must be a mapping with 'base_url' and "
                               "'preset' or 'fields'"), "wrong-type")
            self.raise_problems()
        self.user = self.doc.data
        self.keys((), self.user, _TOP_KEYS, required=("base_url",))
        data = self._with_preset(self.user)
        config = self._config(data)
        self.raise_problems()
        return config

    def _with_preset(self, user: dict) -> dict:
        name = user.get("preset")
        if name is None:
            return user
        if name not in PRESETS:
            self.problem(("preset",), _("unknown preset {name!r}; expected one of {expected}").format(
                name=name, expected=", ".join(sorted(PRESETS))), "unknown-preset")
            return user
        merged = {k: v for k, v in PRESETS[name].items()}
        for key, value in user.items():
            base = merged.get(key)
            if key == "fields" and isinstance(base, dict) and isinstance(value, dict):
                merged[key] = {**base, **value}    # field by field
            elif isinstance(base, dict) and isinstance(value, dict):
                merged[key] = {**base, **value}    # key by key (auth, look-ups)
            else:
                merged[key] = value
        return merged

    def _config(self, data: dict) -> ShopConfig:
        base_url = self._base_url(data.get("base_url"))
        timeout = self._positive(("timeout",), data.get("timeout", DEFAULT_TIMEOUT))
        if isinstance(timeout, float) and timeout >= 10:
            self.problem(("timeout",), _("{timeout} s is too long: a look-up must answer well "
                                         "before the telephony provider gives up (15 s); use at "
                                         "most a few seconds").format(timeout=f"{timeout:g}"),
                         "wrong-value")
        recent_days = self._count(("recent_days",), data.get("recent_days", DEFAULT_RECENT_DAYS))
        auth = self._auth(data.get("auth"))
        breaker = self._breaker(data.get("breaker") or {})
        by_number = self._endpoint("order_by_number", data.get("order_by_number"))
        by_phone = self._endpoint("orders_by_phone", data.get("orders_by_phone"))
        mapping = self._mapping(data.get("fields"))
        if by_phone.check_phone and by_phone.path and "phone" not in mapping.fields:
            self.problem(("orders_by_phone",), _("check_phone needs fields.phone to compare the "
                                                 "orders' numbers with the caller's; map it, or set "
                                                 "check_phone: false if this path only ever answers "
                                                 "the caller's own orders"), "missing-field",
                         at_key=True)
        return ShopConfig(
            source=self.path, base_url=base_url, order_by_number=by_number,
            orders_by_phone=by_phone, mapping=mapping, preset=data.get("preset"),
            timeout=timeout, recent_days=recent_days, **auth, **breaker)

    def _base_url(self, value) -> str:
        if value is None:
            return ""
        if not self.expect(("base_url",), value, str, N_("a URL such as https://shop.example.com")):
            return ""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.problem(("base_url",), _("expected an http:// or https:// URL, found {value!r}").format(
                value=value), "wrong-value")
        return value.rstrip("/")

    def _positive(self, path, value) -> float:
        if not self.expect(path, value, (int, float), N_("a number of seconds")):
            return DEFAULT_TIMEOUT
        if value <= 0:
            self.problem(path, _("expected a positive number of seconds, found {value}").format(value=value),
                         "wrong-value")
        return float(value)

    def _count(self, path, value, minimum=0) -> int:
        if not self.expect(path, value, int, N_("a whole number")):
            return 0
        if value < minimum:
            self.problem(path, _("expected a whole number >= {minimum}, found {value}").format(
                minimum=minimum, value=value), "wrong-value")
        return value

    def _auth(self, value) -> dict:
        if value is None:
            return {}
        if not self.expect(("auth",), value, dict, N_("a mapping with 'header' and 'secret_env'")):
            return {}
        self.keys(("auth",), value, ("header", "scheme", "secret_env"), required=("secret_env",))
        header = value.get("header", "Authorization")
        self.expect(("auth", "header"), header, str, N_("a header name such as X-Shopify-Access-Token"))
        scheme = value.get("scheme", "token")
        if scheme not in AUTH_SCHEMES:
            self.problem(("auth", "scheme"), _("unknown scheme {scheme!r}; expected one of {expected}").format(
                scheme=scheme, expected=", ".join(AUTH_SCHEMES)), "wrong-value")
        env = value.get("secret_env")
        secret = None
        if env is not None and self.expect(("auth", "secret_env"), env, str,
                                           N_("the name of an environment variable")):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env):
                self.problem(("auth", "secret_env"), _("{env!r} is not an environment variable "
                                                       "name: put the secret in the environment and "
                                                       "its name here").format(env=env),
                             "wrong-value")
            else:
                secret = self.environ.get(env)
                if not secret:
                    self.problem(("auth", "secret_env"), _("the environment variable {env} is not "
                                                           "set (or empty): export it before starting "
                                                           "the server").format(env=env),
                                 "missing-secret")
        return {"auth_header": header if isinstance(header, str) else None,
                "auth_scheme": scheme, "secret_env": env, "secret": secret}

    def _breaker(self, value) -> dict:
        if not self.expect(("breaker",), value, dict, N_("a mapping with 'failures' and 'cooldown'")):
            return {}
        self.keys(("breaker",), value, ("failures", "cooldown"))
        return {"failures": self._count(("breaker", "failures"),
                                        value.get("failures", DEFAULT_FAILURES), minimum=1),
                "cooldown": self._positive(("breaker", "cooldown"),
                                           value.get("cooldown", DEFAULT_COOLDOWN))}

    def _endpoint(self, name: str, value) -> Endpoint:
        path = (name,)
        if value is None:
            self.problem((), _("missing field {field!r}: say which path answers it").format(field=name),
                         "missing-field")
            return Endpoint("")
        if not self.expect(path, value, dict, N_("a mapping with 'path'")):
            return Endpoint("")
        allowed = ("path", "orders") + (("find", "check_phone") if name == "orders_by_phone" else ())
        self.keys(path, value, allowed, required=("path",))
        find = self._find(path + ("find",), value["find"]) if value.get("find") is not None else None
        names = PLACEHOLDERS[name] | ({"found"} if find else set())
        url = self._template(path + ("path",), value.get("path", ""), names)
        check = value.get("check_phone", True)
        self.expect(path + ("check_phone",), check, bool, N_("true or false"))
        return Endpoint(url, self._path(path + ("orders",), value.get("orders")), find, check is True)

    def _find(self, path, value) -> Find | None:
        if not self.expect(path, value, dict, N_("a mapping with 'path', 'items' and 'value'")):
            return None
        self.keys(path, value, ("path", "items", "value", "join"), required=("path", "value"))
        join = value.get("join")
        if join is not None:
            self.expect(path + ("join",), join, str, N_("text such as '|'"))
        return Find(self._template(path + ("path",), value.get("path", ""), PLACEHOLDERS["orders_by_phone"]),
                    self._path(path + ("items",), value.get("items")),
                    self._path(path + ("value",), value.get("value", "id")), join)

    def _template(self, path, value, names: set) -> str:
        if not self.expect(path, value, str, N_("a path such as /orders/{number}")):
            return ""
        if "://" in value:
            self.problem(path, _("expected a path relative to base_url, found a full URL"), "wrong-value")
        for placeholder in _PLACEHOLDER.findall(value):
            if placeholder not in names:
                self.problem(path, _("unknown placeholder {placeholder}; expected {expected}").format(
                    placeholder="{" + placeholder + "}",
                    expected=", ".join("{" + n + "}" for n in sorted(names))), "bad-template")
        return value

    def _path(self, path, value):
        if value is None:
            return None
        try:
            return parse_path(value if isinstance(value, str) else "")
        except PathError as error:
            if not isinstance(value, str):
                self.problem(path, _("expected a path such as 'orders', found {found} {value!r}").format(
                    found=type_name(value), value=value), "wrong-type")
            else:
                self.problem(path, str(error), "bad-path")
            return None

    # -- the field mapping -------------------------------------------------------------
    def _mapping(self, value) -> OrderMapping:
        path = ("fields",)
        if value is None:
            self.problem((), _("missing field 'fields': map the shop's JSON to our order fields, "
                               "or choose a preset"), "missing-field")
            value = {}
        if not self.expect(path, value, dict, N_("a mapping of our order fields")):
            value = {}
        self.keys(path, value, FIELDS)
        for name in REQUIRED:
            if name not in value:
                self.problem(path, _("missing field {field!r}").format(field=name), "missing-field",
                             at_key=True)
        specs = {name: self._field(path + (name,), name, spec)
                 for name, spec in value.items() if name in FIELDS and name != "status"}
        rules = self._status(path + ("status",), value.get("status", []))
        return OrderMapping({k: v for k, v in specs.items() if v is not None}, rules)

    def _field(self, path, name, spec) -> FieldSpec | None:
        if isinstance(spec, (str, list)):
            spec = {"path": spec}
        if not self.expect(path, spec, dict, N_("a path, a list of paths or a mapping with 'path'")):
            return None
        allowed = ("path", "map", "unmapped", "sum", "default")
        if name in DATE_FIELDS:
            allowed += ("date",)
        self.keys(path, spec, allowed)
        if "path" not in spec and "default" not in spec:
            self.problem(path, _("missing field 'path' (or 'default' for a fixed value)"), "missing-field",
                         at_key=True)
        raw = spec.get("path", [])
        located = [(path + ("path", i), p) for i, p in enumerate(raw)] if isinstance(raw, list) \
            else [(path + ("path",), raw)]
        paths = tuple(p for p in (self._path(where, text) for where, text in located) if p is not None)
        unmapped = spec.get("unmapped", "keep")
        if unmapped not in UNMAPPED:
            self.problem(path + ("unmapped",), _("expected one of {expected}, found {value!r}").format(
                expected=", ".join(UNMAPPED), value=unmapped), "wrong-value")
        mapped = spec.get("map")
        if mapped is not None and self.expect(path + ("map",), mapped, dict,
                                              N_("a mapping of the shop's values to ours")):
            mapped = {map_key(k): v for k, v in mapped.items()}
        else:
            mapped = None
        date_format = spec.get("date", "iso")
        self.expect(path + ("date",), date_format, str, N_("iso, timestamp or a strptime format"))
        summed = spec.get("sum", False)
        self.expect(path + ("sum",), summed, bool, N_("true or false"))
        return FieldSpec(name, paths, mapped, unmapped, summed is True, date_format, spec.get("default"))

    def _status(self, path, value) -> tuple:
        rules = value if isinstance(value, list) else [value]
        parsed = []
        for i, rule in enumerate(rules):
            rule_path = path + (i,) if isinstance(value, list) else path
            if isinstance(rule, str):
                rule = {"path": rule}
            if not self.expect(rule_path, rule, dict, N_("a mapping with 'path' and 'map'")):
                continue
            self.keys(rule_path, rule, ("path", "map", "if_present", "unmapped"), required=("path",))
            rule_path_value = self._path(rule_path + ("path",), rule.get("path"))
            if_present = rule.get("if_present")
            if if_present is not None:
                self._known_status(rule_path + ("if_present",), if_present)
            mapped = rule.get("map", {})
            if if_present is None and "map" not in rule:
                self.problem(rule_path, _("missing field 'map' (or 'if_present'): say which of our "
                                          "statuses each of the shop's statuses is"), "missing-field",
                             at_key=True)
            statuses = {}
            if self.expect(rule_path + ("map",), mapped, dict, N_("a mapping of the shop's statuses to ours")):
                for key, ours in mapped.items():
                    if ours is not None:
                        self._known_status(rule_path + ("map", key), ours)
                    statuses[None if key is None else map_key(key)] = ours
            unmapped = rule.get("unmapped", "error")
            if unmapped not in ("error", "next"):
                self.problem(rule_path + ("unmapped",), _("expected error or next, found {value!r}").format(
                    value=unmapped), "wrong-value")
            if rule_path_value is not None:
                parsed.append(StatusRule(rule_path_value, statuses, if_present, unmapped))
        return tuple(parsed)

    def _known_status(self, path, status):
        if status not in ORDER_STATUSES:
            self.problem(path, _("unknown status {status!r}; expected one of {expected} (or null to "
                                 "try the next rule)").format(status=status,
                                                              expected=", ".join(ORDER_STATUSES)),
                         "unknown-status")


def _secret_hint(key) -> str:
    if any(word in str(key).lower() for word in _SECRET_WORDS):
        return _("; never put a secret in this file: export it in an environment variable "
                 "and name that variable in auth.secret_env")
    return ""
