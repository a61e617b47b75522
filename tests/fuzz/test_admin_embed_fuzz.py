"""Property-based fuzzing of the admin page's forms and the widget's entry points (hypothesis).

Issue 19 added `POST /admin/switch`, `POST /admin/signout`, the session-bound save and discard,
and `POST /embed/{kind}/{id}/access`. Whatever a browser or an attacker sends them (random
form fields, CSRF values, offers, tickets, bearer tokens, ids), none answers 5xx, and none
lets a stranger in: a signed-in admin's session still names its own workspace afterwards.
"""
from __future__ import annotations

from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.admin_flow import bare_app, bearer, csrf, new_workspace, open_session, redis, shown, token_key  # noqa: F401  (fixtures)

FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)
anything = st.one_of(printable, st.text(max_size=60), st.just(""), st.binary(max_size=80).map(lambda b: b.hex()))
form_fields = st.dictionaries(
    st.sampled_from(["csrf", "offer", "ticket", "tenant", "decision", "state", "confirm", "x"]), anything, max_size=4)
admin_posts = st.sampled_from(["/admin/switch", "/admin/signout", "/admin/xero/save", "/admin/xero/remove",
                               "/admin/xero/connect", "/admin/xero/choose"])
kinds = st.sampled_from(["contacts", "accounts", "deals", "invoices", "x"])
ids = st.one_of(st.text(st.characters(min_codepoint=0x30, max_codepoint=0x7A), min_size=1, max_size=40),
                st.just("c1"))


@FUZZ
@given(path=admin_posts, form=form_fields, with_csrf=st.booleans(), key=st.one_of(st.none(), printable))
def test_admin_forms_never_answer_5xx_and_never_move_a_session(bare_app, path, form, with_csrf, key):
    app = bare_app
    if not hasattr(app, "_fuzz_session"):
        mine = new_workspace(app, "Mine")
        app._fuzz_session = (mine, open_session(app, mine))
    mine, browser = app._fuzz_session
    data = dict(form)
    if with_csrf:
        data["csrf"] = csrf(browser)
    answer = browser.post(path, data=data, headers=bearer(key) if key else {})
    assert answer.status_code < 500, (path, data, answer.status_code)
    if path != "/admin/signout" or not with_csrf:
        page = browser.get("/admin/xero")
        assert page.status_code < 500
        if page.status_code == 200:
            assert shown(browser)["workspace-name"] == "Mine", "no fuzzed form may switch the workspace"
    else:  # a real sign-out: sign in again for the next example
        app._fuzz_session = (mine, open_session(app, mine))


@FUZZ
@given(ticket=anything, method=st.sampled_from(["GET", "POST"]))
def test_admin_links_with_any_ticket_never_answer_5xx(bare_app, ticket, method):
    client = bare_app.test_client()
    answer = client.open("/admin/xero", method=method, query_string={"ticket": ticket})
    assert answer.status_code in (400, 401, 403, 404, 405), "a made-up ticket opens nothing, and never a 5xx"


@FUZZ
@given(kind=kinds, record=ids, authorization=st.one_of(st.none(), printable, printable.map("Bearer {}".format)),
       token=st.one_of(st.none(), anything))
def test_the_widgets_entry_points_never_answer_5xx(bare_app, kind, record, authorization, token):
    client = bare_app.test_client()
    record = quote(record, safe="")  # an id the CRM sends is one path segment
    headers = {"Authorization": authorization} if authorization is not None else {}
    access = client.post(f"/embed/{kind}/{record}/access", headers=headers)
    assert access.status_code < 500 and access.status_code != 204, "no made-up token is accepted"
    page = client.get(f"/embed/{kind}/{record}", query_string={"token": token} if token is not None else {})
    assert page.status_code < 500
