"""The HTML forms of a page (the authorization server's sign-in page), read with ``html.parser``.

Only what a browser would submit matters: each form's ``action`` and ``method`` and its
controls' names and values (hidden inputs, text inputs, checked boxes, selected options,
textareas). Disabled controls and submit buttons are not submitted; the kit names the button
it "clicks" itself (``action=sign-in``). ``page_text`` gives the visible words of a page, for a
failure that has to say what the server answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser

NOT_SUBMITTED = frozenset({"submit", "button", "image", "reset", "file"})
CHECKABLE = frozenset({"checkbox", "radio"})
INVISIBLE = frozenset({"script", "style", "head", "title", "template"})


@dataclass(frozen=True, slots=True)
class FormField:
    """One control: its name, the value a browser would send, and its kind (input type)."""

    name: str
    value: str
    kind: str


@dataclass(frozen=True, slots=True)
class HtmlForm:
    """A form as a browser would submit it."""

    action: str
    """The ``action`` attribute as written (empty: the page's own URL)."""
    method: str
    """Lower-case, ``get`` when not given."""
    fields: tuple[FormField, ...]

    def has(self, name: str) -> bool:
        return any(item.name == name for item in self.fields)

    def kind_of(self, name: str) -> str | None:
        return next((item.kind for item in self.fields if item.name == name), None)

    def submission(self, values: Mapping[str, str]) -> list[tuple[str, str]]:
        """The pairs to send: every control with its value, those named in ``values`` given
        that value instead (once), and the names of ``values`` the form lacks added."""
        pairs: list[tuple[str, str]] = []
        for item in self.fields:
            if item.name not in values:
                pairs.append((item.name, item.value))
            elif all(name != item.name for name, _ in pairs):
                pairs.append((item.name, values[item.name]))
        present = {name for name, _ in pairs}
        pairs.extend((name, value) for name, value in values.items() if name not in present)
        return pairs


@dataclass
class _OpenForm:
    action: str
    method: str
    fields: list[FormField] = field(default_factory=list)

    def close(self) -> HtmlForm:
        return HtmlForm(action=self.action, method=self.method, fields=tuple(self.fields))


@dataclass
class _OpenChoice:
    """A ``select`` being read: the first option, and the selected one when marked."""

    name: str | None
    first: str | None = None
    selected: str | None = None


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[HtmlForm] = []
        self._form: _OpenForm | None = None
        self._choice: _OpenChoice | None = None
        self._option: tuple[str | None, bool] | None = None
        self._option_text: list[str] = []
        self._textarea: str | None = None
        self._textarea_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = _OpenForm(action=attributes.get("action", "").strip(),
                                   method=attributes.get("method", "get").strip().lower())
        elif self._form is None or "disabled" in attributes:
            return
        elif tag == "input":
            self._input(attributes)
        elif tag == "select":
            self._choice = _OpenChoice(name=attributes.get("name"))
        elif tag == "option" and self._choice is not None:
            self._end_option()
            self._option = (attributes.get("value"), "selected" in attributes)
            self._option_text = []
        elif tag == "textarea":
            self._textarea = attributes.get("name")
            self._textarea_text = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._option_text.append(data)
        elif self._textarea is not None:
            self._textarea_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "option":
            self._end_option()
        elif tag == "select":
            self._end_option()
            self._end_select()
        elif tag == "textarea" and self._textarea is not None:
            self._add(self._textarea, "".join(self._textarea_text), "textarea")
            self._textarea = None
        elif tag == "form" and self._form is not None:
            self.forms.append(self._form.close())
            self._form = None

    def close(self) -> None:
        super().close()
        if self._form is not None:
            self.forms.append(self._form.close())
            self._form = None

    def _input(self, attributes: Mapping[str, str]) -> None:
        kind = attributes.get("type", "text").strip().lower() or "text"
        name = attributes.get("name")
        if not name or kind in NOT_SUBMITTED:
            return
        if kind in CHECKABLE and "checked" not in attributes:
            return
        default = "on" if kind in CHECKABLE else ""
        self._add(name, attributes.get("value", default), kind)

    def _end_option(self) -> None:
        if self._option is None or self._choice is None:
            return
        value, selected = self._option
        chosen = value if value is not None else " ".join("".join(self._option_text).split())
        if self._choice.first is None:
            self._choice.first = chosen
        if selected and self._choice.selected is None:
            self._choice.selected = chosen
        self._option = None

    def _end_select(self) -> None:
        choice, self._choice = self._choice, None
        if choice is None or not choice.name:
            return
        value = choice.selected if choice.selected is not None else choice.first
        if value is not None:
            self._add(choice.name, value, "select")

    def _add(self, name: str, value: str, kind: str) -> None:
        if self._form is not None and name:
            self._form.fields.append(FormField(name=name, value=value, kind=kind))


def parse_forms(html: str) -> tuple[HtmlForm, ...]:
    """Every form of ``html``, in page order (an unclosed form ends with the page)."""
    reader = _FormReader()
    reader.feed(html)
    reader.close()
    return tuple(reader.forms)


def sign_in_form(html: str) -> HtmlForm | None:
    """The page's first form with a password field, or None."""
    return next((form for form in parse_forms(html) if "password" in
                 {item.kind for item in form.fields}), None)


class _TextReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.words: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in INVISIBLE:
            self._hidden_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in INVISIBLE and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.words.extend(data.split())


def page_text(html: str, limit: int = 300) -> str:
    """The visible words of a page on one line, cut at ``limit`` characters."""
    reader = _TextReader()
    reader.feed(html)
    reader.close()
    text = " ".join(reader.words)
    return text if len(text) <= limit else text[:limit - 1] + "…"
