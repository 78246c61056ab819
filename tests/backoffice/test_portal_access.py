"""The patient page's "Portal access" panel (issue 13): billing staff invite a patient (or send the
link again), disable access with a reason, and issue a statement whose guest-pay code the page
shows; refusals come back as messages; staff of another practice get a 404 and nothing changes;
the patient's portal events are in the page's history; the practice's portal settings save from
the admin with a clear error for a colour too light for white text."""

from datetime import date

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from ledger.models import Membership, Practice
from portal.accounts import WRONG_LOGIN
from portal.models import PortalEvent, Statement
from portal.services import guest_statement_open
from tests.backoffice.conftest import messages_of, patient_page
from tests.factories import MembershipFactory, PracticeFactory, UserFactory
from tests.portal.conftest import PASSWORD, with_login

pytestmark = pytest.mark.django_db


def url(name, patient):
    return reverse(f"admin:ledger_patient_{name}", args=[patient.pk])


def staff_client(user):
    c = Client()
    c.force_login(user)
    return c


def test_billing_staff_invite_from_the_patient_page(world, django_capture_on_commit_callbacks):
    p = world.patient(first_name="Eve", email="eve@example.org")
    clerk = staff_client(world.clerk)
    page = clerk.get(patient_page(p))
    assert page.status_code == 200
    assert "Patient portal: <strong>not invited</strong>" in page.text and "Invite to the portal" in page.text
    assert 'id="portal-disable"' not in page.text
    with django_capture_on_commit_callbacks(execute=True):
        r = clerk.post(url("portal_invite", p), {"reason": "asked at the desk"})
    assert r.status_code == 302 and r.url == patient_page(p) + "#tab-portal"
    assert messages_of(clerk, r) == ["Portal link sent to eve@example.org; it works once, for a limited time."]
    assert len(mail.outbox) == 1 and "/portal/activate/" in mail.outbox[0].body
    ev = PortalEvent.objects.get(patient=p)
    assert ev.kind == PortalEvent.Kind.INVITED and ev.actor == world.clerk and "asked at the desk" in ev.detail
    page = clerk.get(patient_page(p))
    assert "invited, password not set yet" in page.text and "Send the link again" in page.text
    assert 'id="portal-disable"' in page.text
    with django_capture_on_commit_callbacks(execute=True):
        clerk.post(url("portal_invite", p), {"reason": ""})  # no reason typed: the default one
    assert len(mail.outbox) == 2
    assert PortalEvent.objects.filter(patient=p, kind=PortalEvent.Kind.INVITED).last().detail == \
        "Link sent again to eve@example.org: Portal invitation"


def test_a_refused_invitation_is_a_message_and_changes_nothing(world):
    p = world.patient(email="")
    clerk = staff_client(world.clerk)
    r = clerk.post(url("portal_invite", p), {"reason": "asked"})
    assert r.status_code == 302
    assert messages_of(clerk, r) == ["Refused: the patient has no e-mail address: add one on the patient's record "
                                     "first"]
    p.refresh_from_db()
    assert p.user_id is None and not PortalEvent.objects.exists() and not mail.outbox


def test_disable_needs_a_reason_and_ends_the_login(world):
    p = with_login(world.patient(email="ann@example.org"), world.clerk)
    clerk = staff_client(world.clerk)
    r = clerk.post(url("portal_disable", p), {"reason": "  "})
    assert messages_of(clerk, r)[0].startswith("Give a reason")
    p.user.refresh_from_db()
    assert p.user.is_active
    r = clerk.post(url("portal_disable", p), {"reason": "the patient asked"})
    assert "Portal access disabled" in messages_of(clerk, r)[0]
    p.user.refresh_from_db()
    assert not p.user.is_active
    ev = PortalEvent.objects.filter(patient=p).last()
    assert ev.kind == PortalEvent.Kind.DISABLED and ev.actor == world.clerk and ev.detail == "the patient asked"
    r = clerk.post(url("portal_disable", p), {"reason": "again"})
    assert messages_of(clerk, r) == ["Refused: the patient has no active portal access"]
    page = clerk.get(patient_page(p))
    assert "Patient portal: <strong>disabled</strong>" in page.text and "Invite again" in page.text


def test_disabling_ends_an_open_portal_session(world):
    p = with_login(world.patient(email="ann@example.org"), world.clerk)
    patient_browser = Client()
    r = patient_browser.post("/portal/login/", {"email": "ann@example.org", "password": PASSWORD})
    assert r.status_code == 302 and "_auth_user_id" in patient_browser.session
    staff_client(world.clerk).post(url("portal_disable", p), {"reason": "lost phone"})
    code = patient_browser.get(reverse("portal:code"))  # any portal page: the session is over
    assert code.status_code == 302 and code["Location"].startswith("/portal/login/")
    r = patient_browser.post("/portal/login/", {"email": "ann@example.org", "password": PASSWORD})
    assert r.status_code == 200 and WRONG_LOGIN in r.text
    assert patient_browser.get(reverse("portal:code"))["Location"].startswith("/portal/login/")


def test_issue_a_statement_shows_its_code(world):
    p = world.patient(date_of_birth=date(1980, 5, 17))
    enc, claim = world.visit(p, date(2026, 3, 3), charge="100.00")
    world.remit(claim, pr="45.00", paid="55.00")
    clerk = staff_client(world.clerk)
    r = clerk.post(url("statement_issue", p), {"reason": "Statement"})
    st = Statement.objects.get(patient=p)
    assert st.due_now == 45 and st.issued_by == world.clerk
    assert messages_of(clerk, r) == [f"Statement issued: code {st.display_code} (give it to the patient with the "
                                     "statement; they pay as a guest with it and their date of birth); due now "
                                     "45.00."]
    page = clerk.get(patient_page(p))
    assert f"<strong>{st.display_code}</strong>" in page.text


def test_the_history_shows_portal_events_with_who(world):
    p = with_login(world.patient(email="ann@example.org", date_of_birth=date(1980, 5, 17)), world.clerk)
    Client().post("/portal/login/", {"email": "ann@example.org", "password": PASSWORD}, REMOTE_ADDR="10.5.5.5")
    clerk = staff_client(world.clerk)
    clerk.post(url("statement_issue", p), {"reason": "Statement"})
    st = Statement.objects.get(patient=p)
    with pytest.raises(Exception, match="no statement matches"):
        guest_statement_open(code=st.code, date_of_birth=date(2000, 1, 1), ip="203.0.113.9")
    history = clerk.get(patient_page(p)).context["page"].history
    portal = [(h.who, h.change) for h in history if h.what == "Portal"]
    assert portal == [
        ("guest", "Guest pay: wrong date of birth from 203.0.113.9"),
        ("clerk", "Statement issued"),
        ("the patient (ann@example.org, portal)", "Signed in from 10.5.5.5"),
        ("clerk", "Invitation sent"),
    ]


def test_staff_of_another_practice_get_404_and_nothing_changes(world):
    p = with_login(world.patient(email="ann@example.org"), world.clerk)
    outsider = MembershipFactory(practice=PracticeFactory(name="Elsewhere"), user=UserFactory(username="far"),
                                 role=Membership.Role.MANAGER).user
    no_role = UserFactory(username="norole")  # staff with no practice at all
    before = PortalEvent.objects.count()
    for user, status in ((outsider, 404), (no_role, 403)):
        c = staff_client(user)
        for name in ("portal_invite", "portal_disable", "statement_issue"):
            assert c.post(url(name, p), {"reason": "try"}).status_code == status, (user, name)
    p.user.refresh_from_db()
    assert p.user.is_active and PortalEvent.objects.count() == before and not Statement.objects.exists()


def test_the_actions_are_posts_with_csrf(world):
    p = world.patient(email="eve@example.org")
    clerk = staff_client(world.clerk)
    for name in ("portal_invite", "portal_disable", "statement_issue"):
        assert clerk.get(url(name, p)).status_code == 405, name
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world.clerk)
    for name in ("portal_invite", "portal_disable", "statement_issue"):
        assert strict.post(url(name, p), {"reason": "x"}).status_code == 403, name
    p.refresh_from_db()
    assert p.user_id is None and not Statement.objects.exists()


def _practice_form_data(client, practice) -> dict:
    context = client.get(reverse("admin:ledger_practice_change", args=[practice.pk])).context
    form = context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = str(value)
    for inline in context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data |= {management.add_prefix(name): management[name].value() for name in management.fields}
    return data


def test_practice_portal_settings_show_and_save_with_a_clear_error_for_a_light_colour(world):
    manager = staff_client(world.manager)
    page = manager.get(reverse("admin:ledger_practice_change", args=[world.practice.pk]))
    assert 'name="portal_otp_required"' in page.text and 'name="portal_colour"' in page.text
    data = _practice_form_data(manager, world.practice) | {"portal_colour": "#eeeeee", "portal_otp_required": "on",
                                                           "reason": "brand"}
    r = manager.post(reverse("admin:ledger_practice_change", args=[world.practice.pk]), data)
    assert r.status_code == 200
    error = " ".join(r.context["adminform"].form.errors["portal_colour"])
    assert "#eeeeee is too light for white text" in error and "4.5:1" in error
    practice = Practice.objects.get(pk=world.practice.pk)
    assert not practice.portal_otp_required and practice.portal_colour != "#eeeeee"
    r = manager.post(reverse("admin:ledger_practice_change", args=[world.practice.pk]),
                     data | {"portal_colour": "#1D4F91"})
    assert r.status_code == 302, r.context["adminform"].form.errors
    practice.refresh_from_db()
    assert practice.portal_otp_required and practice.portal_colour == "#1d4f91"
