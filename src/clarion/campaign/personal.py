"""A recipient's own content: per-language texts and sandboxed templates (#17, docs/personalization.md).

A campaign made through /v1 or the console may carry content per language and texts that are Jinja2
templates over the subscriber's attributes, alias, tags and language. `check` compiles every text when
the campaign is created (a text that cannot compile is a 422 naming its field); `Personal.build`
compiles them again once per campaign when a worker loads it, and `Personal.content_for` renders one
recipient's notification at send time.

The sandbox is narrower than Jinja2's own: a template is expressions, filters, tests and if/else (no
loops, no calls, no assignments, no `*`, `**` or `%`), so rendering takes time and memory in proportion
to the template and the subscriber's (bounded) data, whatever the template says; only listed filters
exist; a missing name fails unless it has a default (`{{ first_name | default("there") }}`); and each
rendered text is held to the limit its field has at creation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, meta, nodes
from jinja2 import filters as jinja_filters
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from clarion import errors
from clarion.attributes import check_language, language_candidates
from clarion.campaign.schemas import Button, Content, Personalization
from clarion.content import Button as SentButton
from clarion.content import Notification
from clarion.validation import clickable_url_problem, http_url_problem

# The limits a push body's texts have at creation (gravitec/push_body.py: MAX_TEXT, MAX_BUTTON_TITLE),
# held again after rendering: a template cannot make a text longer than the field may be.
MAX_TEXT_CHARS = 1000
MAX_BUTTON_TITLE_CHARS = 48
# What makes a text a template; a text without any of these is sent as it is.
MARKERS = ("{{", "{%", "{#")

# The nodes a template may hold: output, names, constants, lookups, filters, tests, conditions and
# joining strings. Everything else (for, macro, call, set, include, import, `*`, `**`, `%`, …) is
# refused at compilation, which bounds a render by the template's size.
_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Neg,
    nodes.Pos,
    nodes.List,
    nodes.Tuple,
    nodes.Keyword,
)
# Filters whose work is bounded by their input: no replace (chained, it multiplies a text's length),
# no center/indent/format (their width is an argument), no filter that calls or sorts by attribute.
_FILTERS = (
    "default",
    "d",
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "truncate",
    "length",
    "count",
    "first",
    "last",
    "join",
    "urlencode",
    "string",
    "wordcount",
)


class _Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox (no `_`-prefixed or unsafe attributes), with calls refused outright: the
    compile-time node check already refuses call syntax; this holds should a call get through."""

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        raise SecurityError("a template calls no functions or methods")


@functools.cache
def _environment() -> SandboxedEnvironment:
    """Built on first use (no work at import time); the same for every campaign of the process."""
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters = {name: jinja_filters.FILTERS[name] for name in _FILTERS}
    env.globals = {}
    return env


class RenderFailure(Exception):
    """One recipient's template failed: the reason goes to its ledger row."""


def is_template(text: str | None) -> bool:
    return text is not None and any(marker in text for marker in MARKERS)


def _refused_node(tree: nodes.Node) -> str | None:
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES) or isinstance(node, nodes.Mul | nodes.Pow | nodes.Mod):
            return type(node).__name__
    return None


def compile_text(text: str, field_name: str) -> Template:
    """A text as a template, or a 422 naming the field."""
    env = _environment()
    try:
        tree = env.parse(text)
        refused = _refused_node(tree)
        if refused is not None:
            raise errors.InvalidField(
                f"{field_name}: templates allow expressions, filters, tests and if/else only, not {refused}",
                field=field_name,
            )
        return env.from_string(tree)
    except TemplateError as error:
        raise errors.InvalidField(
            f"{field_name}: the template does not compile: {error}", field=field_name
        ) from None


# The texts of a content that may be templates, by the field names a request gives them.
def _texts(content: Content, prefix: str) -> Iterator[tuple[str, str]]:
    yield f"{prefix}.title", content.title
    yield f"{prefix}.message", content.message
    yield f"{prefix}.redirect_url", content.redirect_url
    for index, button in enumerate(content.buttons):
        yield f"{prefix}.buttons[{index}].title", button.title
        yield f"{prefix}.buttons[{index}].url", button.url


def has_templates(contents: Mapping[str, Content]) -> bool:
    """`contents`: field prefix -> content ("payload", "languages.fr")."""
    return any(is_template(text) for prefix, c in contents.items() for _, text in _texts(c, prefix))


def check(contents: Mapping[str, Content]) -> None:
    """Compile every text that is a template (at creation); a 422 names the first that fails."""
    for prefix, content_ in contents.items():
        for name, text in _texts(content_, prefix):
            if is_template(text):
                compile_text(text, name)


# A template's tags, each standing for text that is only known per recipient.
_TEMPLATE_TAGS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
# What a template tag is checked as in a URL: the rest of the URL must pass the URL rule by itself.
_STAND_IN = "x"


def stand_in(url: str) -> str:
    return _TEMPLATE_TAGS.sub(_STAND_IN, url) if is_template(url) else url


def template_urls(payload: dict[str, Any]) -> dict[str, str]:
    """Replace the payload's templated URLs (in place, in a request's own dict) by their shape with
    each template tag a plain word, so the push body's URL rules check the rest; returns the originals
    by field ("redirect_url", "buttons[0]")."""
    originals: dict[str, str] = {}
    url = payload.get("redirect_url")
    if isinstance(url, str) and is_template(url):
        originals["redirect_url"], payload["redirect_url"] = url, stand_in(url)
    for index, button in enumerate(payload.get("buttons") or ()):
        url = button.get("url") if isinstance(button, dict) else None
        if isinstance(url, str) and is_template(url):
            originals[f"buttons[{index}]"], button["url"] = url, stand_in(url)
    return originals


def with_urls(content: Content, originals: Mapping[str, str]) -> Content:
    """The checked content with its templated URLs put back."""
    buttons = tuple(
        replace(button, url=originals.get(f"buttons[{index}]", button.url))
        for index, button in enumerate(content.buttons)
    )
    return replace(content, redirect_url=originals.get("redirect_url", content.redirect_url), buttons=buttons)


@dataclass(frozen=True, slots=True)
class Profile:
    """What a template reads of a subscriber, and the language its content is chosen by."""

    alias: str | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, Any]:
        """Attributes by name, then the subscriber's own fields (their names are reserved). An alias
        or language the subscriber lacks is undefined, as a missing attribute is: it takes a default."""
        known = {"alias": self.alias, "language": self.language}
        return {
            **self.attributes,
            "attributes": dict(self.attributes),
            "tags": list(self.tags),
            **{name: value for name, value in known.items() if value is not None},
        }


NO_PROFILE = Profile()


# What a render may raise for one recipient's data (a missing name, a filter given the wrong type).
_RENDER_ERRORS = (TemplateError, ArithmeticError, TypeError, ValueError)


def _rendered(template: Template, variables: dict[str, Any], name: str) -> str:
    try:
        return template.render(variables)
    except _RENDER_ERRORS as error:
        raise RenderFailure(f"{name}: {error}") from None


@dataclass(frozen=True, slots=True)
class _Field:
    """One templated text of a notification: where it goes (a Notification attribute, or a button's
    `title` or `action` when `button` is its index), its template, its limit and URL rule."""

    name: str
    template: Template
    limit: int
    attr: str
    button: int | None = None
    url_problem: Callable[[str], str | None] | None = None
    source: str = ""  # the template's text


def _fields(shown: Notification) -> Iterator[_Field]:
    def template(text: str | None, name: str) -> Template | None:
        return compile_text(text, name) if text is not None and is_template(text) else None

    simple: tuple[tuple[str, str, str | None, Callable[[str], str | None] | None], ...] = (
        ("title", "title", shown.title, None),
        ("message", "message", shown.message, None),
        ("redirect_url", "url", shown.url, http_url_problem),
    )
    for name, attr, text, rule in simple:
        found = template(text, name)
        if found is not None:
            yield _Field(name, found, MAX_TEXT_CHARS, attr, url_problem=rule, source=str(text))
    for index, button in enumerate(shown.buttons):
        name = f"buttons[{index}]"
        title = template(button.title, f"{name}.title")
        if title is not None:
            yield _Field(f"{name}.title", title, MAX_BUTTON_TITLE_CHARS, "title", index, source=button.title)
        url = template(button.action, f"{name}.url")
        if url is not None:
            yield _Field(
                f"{name}.url",
                url,
                MAX_TEXT_CHARS,
                "action",
                index,
                clickable_url_problem,
                source=str(button.action),
            )


# Rendered notifications a compiled content keeps, by the values of the names its templates read:
# recipients alike in those (the same plan, city, language) share one render. Bounded per campaign
# and language: past this, the rest are rendered each time.
MEMO_ENTRIES = 4096
_MISSING = object()  # a name the recipient lacks (its template takes the default, or fails)


# Between the texts of a joined template (`_joined`): not whitespace (a `{%-` cannot strip it), so a
# render holds exactly one fewer than the texts unless a value itself carries one.
_SEPARATOR = "\x00"


def _joined(fields: tuple[_Field, ...]) -> Template | None:
    """All the templated texts as one template, their outputs separated by _SEPARATOR: one render per
    recipient instead of one per text (≈ 6 against 15 µs for a title, message, URL and button); None
    for fewer than two texts."""
    if len(fields) < 2:
        return None
    try:
        return compile_text(_SEPARATOR.join(one.source for one in fields), "content")
    except errors.InvalidField:  # each text compiled alone: render them one by one
        return None


def _names(shown: Notification) -> tuple[str, ...]:
    """Every variable the notification's templated texts read."""
    texts = [shown.title, shown.message, shown.url]
    texts += [text for button in shown.buttons for text in (button.title, button.action)]
    env = _environment()
    found: set[str] = set()
    for text in texts:
        if text is not None and is_template(text):
            found |= meta.find_undeclared_variables(env.parse(text))
    return tuple(sorted(found))


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    return value


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One language's notification with its templated texts compiled."""

    shown: Notification
    fields: tuple[_Field, ...]
    names: tuple[str, ...] = ()  # the variables its templates read
    joined: Template | None = None  # every templated text in one (`_joined`)
    memo: dict[tuple[Any, ...], Notification] = field(default_factory=dict, compare=False, repr=False)

    def render(self, profile: Profile) -> Notification:
        """The recipient's notification: rendered once per distinct value of what the templates read
        (the render, its URL checks and its `replace`: ≈ 30 µs a recipient), then shared."""
        if not self.fields:
            return self.shown
        variables = profile.variables()
        key = tuple(_hashable(variables.get(name, _MISSING)) for name in self.names)
        found = self.memo.get(key)
        if found is not None:
            return found
        rendered = self._render(variables)
        if len(self.memo) < MEMO_ENTRIES:
            self.memo[key] = rendered
        return rendered

    def _render(self, variables: dict[str, Any]) -> Notification:
        """The texts rendered, then placed with one `replace` (a frozen dataclass' replace costs
        ≈ 10 µs: one per text doubled the cost of a templated message)."""
        changes: dict[str, Any] = {}
        buttons = list(self.shown.buttons)
        for one, text in zip(self.fields, self._texts(variables), strict=True):
            if len(text) > one.limit:
                raise RenderFailure(f"{one.name}: rendered {len(text)} characters, at most {one.limit}")
            problem = one.url_problem(text) if one.url_problem is not None else None
            if problem is not None:
                raise RenderFailure(f"{one.name}: the rendered URL {problem}")
            if one.button is None:
                changes[one.attr] = text
            else:
                old = buttons[one.button]
                title, action = (text, old.action) if one.attr == "title" else (old.title, text)
                buttons[one.button] = SentButton(title, old.action_type, action)
                changes["buttons"] = tuple(buttons)
        return replace(self.shown, **changes)

    def _texts(self, variables: dict[str, Any]) -> list[str]:
        """Every templated text rendered: by the joined template when it renders and splits into as
        many texts, else one by one (which names the text that fails)."""
        if self.joined is not None:
            try:
                texts = self.joined.render(variables).split(_SEPARATOR)
            except _RENDER_ERRORS:
                texts = []
            if len(texts) == len(self.fields):
                return texts
        return [_rendered(one.template, variables, one.name) for one in self.fields]


def _in_language(base: Notification, stored: dict[str, Any]) -> Notification:
    """A language's texts over the default notification (pictures, TTL, tag and the rest shared)."""
    buttons = stored.get("buttons")
    return replace(
        base,
        title=stored.get("title") or base.title,
        message=str(stored["message"]),
        url=stored.get("redirect_url") or base.url,
        buttons=base.buttons
        if buttons is None
        else tuple(SentButton(str(b["title"]), "open_url", str(b["url"])) for b in buttons),
    )


@dataclass(frozen=True, slots=True)
class Personal:
    """A campaign's content per recipient, compiled once when a worker loads the campaign."""

    default: _Compiled
    by_language: dict[str, _Compiled]
    templated: bool

    @staticmethod
    def build(base: Notification, stored: dict[str, Any] | None) -> Personal | None:
        """None: every recipient gets `base` (no templates, no other language)."""
        if not stored:
            return None
        templated = bool(stored.get("templates"))

        def compiled(shown: Notification) -> _Compiled:
            if not templated:
                return _Compiled(shown, ())
            fields = tuple(_fields(shown))
            return _Compiled(shown, fields, _names(shown), _joined(fields))

        languages = {
            tag.lower(): compiled(_in_language(base, texts))
            for tag, texts in (stored.get("languages") or {}).items()
        }
        default_language = stored.get("default_language")
        if not templated and not languages:
            return None
        default = compiled(base)
        if default_language:  # the default language is `base`, also when a subscriber names it
            languages[str(default_language).lower()] = default
        return Personal(default, languages, templated)

    def content_for(self, profile: Profile | None) -> Notification:
        """The recipient's notification: its language's content (the whole tag, then its prefixes,
        else the default), rendered over its profile. RenderFailure: why it cannot be sent."""
        profile = profile or NO_PROFILE
        chosen = self.default
        for tag in language_candidates(profile.language):
            found = self.by_language.get(tag)
            if found is not None:
                chosen = found
                break
        return chosen.render(profile)


def stored(
    templates: bool, default_language: str | None, languages: Mapping[str, Content]
) -> dict[str, Any] | None:
    """campaigns.personalization for a new campaign; None when it has neither templates nor languages."""
    if not templates and not languages:
        return None
    return {
        "templates": templates,
        "default_language": default_language,
        "languages": {
            tag: {
                "title": c.title,
                "message": c.message,
                "redirect_url": c.redirect_url,
                "buttons": [{"title": b.title, "url": b.url} for b in c.buttons],
            }
            for tag, c in languages.items()
        },
    }


def _language_url(value: str, field: str, *, clickable: bool) -> str:
    problem = (clickable_url_problem if clickable else http_url_problem)(stand_in(value))
    if problem is not None:
        raise errors.InvalidField(f"{field} {problem}", field=field)
    return value


def _language(default: Content, tag: str, texts: Mapping[str, Any]) -> Content:
    field = f"languages.{tag}"
    redirect = texts.get("redirect_url")
    buttons = texts.get("buttons")
    return replace(
        default,
        title=texts.get("title") or default.title,
        message=str(texts["message"]),
        redirect_url=default.redirect_url
        if redirect is None
        else _language_url(redirect, f"{field}.redirect_url", clickable=False),
        buttons=default.buttons
        if buttons is None
        else tuple(
            Button(b["title"], _language_url(b["url"], f"{field}.buttons[{i}].url", clickable=True))
            for i, b in enumerate(buttons)
        ),
    )


def personalization(
    content: Content, default_language: str | None, languages: Mapping[str, Mapping[str, Any]]
) -> Personalization:
    """Templates always (a /v1 text with no template tag is sent as it is); the languages checked."""
    default = None if default_language is None else check_language(default_language, "default_language")
    chosen: dict[str, Content] = {}
    for tag, texts in languages.items():
        check_language(tag, f"languages.{tag}")
        if tag.lower() in {known.lower() for known in chosen} or (default and tag.lower() == default.lower()):
            raise errors.InvalidField(
                f"languages.{tag}: this language is given twice", field=f"languages.{tag}"
            )
        chosen[tag] = _language(content, tag, texts)
    return Personalization(templates=True, default_language=default, languages=tuple(chosen.items()))
