"""Reading a sign-in page as a browser would: the forms, what they submit, the visible text."""

from __future__ import annotations

from conformance.smart.forms import FormField, page_text, parse_forms, sign_in_form

SIGN_IN_PAGE = """<!doctype html>
<html><head><title>Connexion</title><script>var secret = "not text";</script></head>
<body>
<form action="/search" method="get"><input name="q" value="a"></form>
<form method="POST" action="/auth/authorize?step=1&amp;x=y">
  <input type="hidden" name="client_id" value="app-1">
  <input type="hidden" name="state" value="s&amp;t&quot;&lt;">
  <input type="hidden" name="csrf" value="c1">
  <input type=email name=email>
  <input type="password" name="password">
  <input type="text" name="patient" value="">
  <input type="checkbox" name="remember" checked>
  <input type="checkbox" name="newsletter" value="yes">
  <input type="radio" name="lang" value="fr" checked><input type="radio" name="lang" value="en">
  <input type="text" name="locked" value="z" disabled>
  <input type="file" name="upload">
  <select name="tier"><option value="1">One<option value="2" selected>Two</select>
  <select name="region"><option>Île-de-France</option><option>Bretagne</option></select>
  <textarea name="note">line one
line two</textarea>
  <button type="submit" name="action" value="sign-in">Se connecter</button>
  <button type="submit" name="action" value="cancel">Annuler</button>
</form>
<p>Bienvenue &eacute;  sur   Pictaderm</p>
</body></html>"""


def test_forms_are_read_in_page_order_with_action_and_method() -> None:
    forms = parse_forms(SIGN_IN_PAGE)
    assert [(form.action, form.method) for form in forms] == [
        ("/search", "get"), ("/auth/authorize?step=1&x=y", "post")]
    assert forms[0].fields == (FormField("q", "a", "text"),)


def test_a_form_holds_what_a_browser_submits_and_nothing_else() -> None:
    form = sign_in_form(SIGN_IN_PAGE)
    assert form is not None
    assert [(item.name, item.value) for item in form.fields] == [
        ("client_id", "app-1"), ("state", 's&t"<'), ("csrf", "c1"), ("email", ""),
        ("password", ""), ("patient", ""), ("remember", "on"), ("lang", "fr"), ("tier", "2"),
        ("region", "Île-de-France"), ("note", "line one\nline two")]
    assert form.kind_of("email") == "email" and form.kind_of("password") == "password"
    assert form.has("csrf") and not form.has("action") and not form.has("locked")


def test_a_submission_fills_named_fields_once_and_adds_the_others() -> None:
    form = sign_in_form(SIGN_IN_PAGE)
    assert form is not None
    pairs = form.submission({"email": "a@b.fr", "password": "pw", "action": "sign-in",
                             "patient": "p1"})
    assert pairs[:6] == [("client_id", "app-1"), ("state", 's&t"<'), ("csrf", "c1"),
                         ("email", "a@b.fr"), ("password", "pw"), ("patient", "p1")]
    assert pairs[-1] == ("action", "sign-in")
    assert [name for name, _ in pairs].count("email") == 1


def test_a_repeated_name_given_a_value_is_sent_once() -> None:
    [form] = parse_forms('<form><input type="hidden" name="x" value="1">'
                         '<input type="hidden" name="x" value="2"><input name="y"></form>')
    assert form.submission({}) == [("x", "1"), ("x", "2"), ("y", "")]
    assert form.submission({"x": "9"}) == [("x", "9"), ("y", "")]


def test_a_page_without_a_password_field_has_no_sign_in_form() -> None:
    assert sign_in_form('<form><input name="email"></form><p>Erreur</p>') is None
    assert parse_forms("<p>no form at all</p>") == ()


def test_an_unclosed_form_ends_with_the_page() -> None:
    [form] = parse_forms('<form action="/a"><input type="password" name="pw" value="v">')
    assert form.fields == (FormField("pw", "v", "password"),)


def test_page_text_is_the_visible_words_on_one_line() -> None:
    assert page_text(SIGN_IN_PAGE).endswith("Bienvenue é sur Pictaderm")
    assert "secret" not in page_text(SIGN_IN_PAGE)
    assert "Connexion" not in page_text(SIGN_IN_PAGE)
    assert page_text("<p>" + "mot " * 200 + "</p>", limit=20) == "mot mot mot mot mot…"
