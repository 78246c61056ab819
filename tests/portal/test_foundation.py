"""The portal's foundation: invitations, disabling access, statements and their codes, the
guest-pay check (example P's lock), the patient-only access and the security headers."""

from datetime import date, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from ledger.errors import Duplicate, InvalidInput, NotFound, PermissionDenied, RuleViolation
from portal.middleware import CSP
from portal.models import PortalEvent, Statement
from portal.services import (
    GuestLocked,
    guest_statement_open,
    normalise_code,
    patient_for_user,
    portal_disable,
    portal_invite,
    portal_status,
    statement_issue,
)
from tests.factories import MembershipFactory, PracticeFactory, UserFactory
from tests.portal.conftest import sign_in

pytestmark = pytest.mark.django_db


def test_invitation_mails_a_one_time_link_and_makes_a_portal_login(world, django_capture_on_commit_callbacks):
    p = world.patient(first_name="Eve", email="Eve.Stone@Example.org")
    with django_capture_on_commit_callbacks(execute=True):
        inv = portal_invite(patient_id=p.pk, actor=world.clerk, reason="asked at the desk")
    p.refresh_from_db()
    assert p.user_id == inv.user.pk and inv.user.username == "eve.stone@example.org"
    assert not inv.user.has_usable_password() and not inv.user.is_staff
    assert portal_status(p) == "invited, password not set yet"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["eve.stone@example.org"]
    assert inv.link in mail.outbox[0].body and "/portal/activate/" in inv.link
    ev = PortalEvent.objects.get(patient=p)
    assert ev.kind == PortalEvent.Kind.INVITED and ev.actor == world.clerk and "asked at the desk" in ev.detail
    assert p.history.first().history_user == world.clerk  # the login linked, with who and why


def test_invitation_refusals(world):
    no_mail = world.patient(email="")
    with pytest.raises(InvalidInput, match="no e-mail"):
        portal_invite(patient_id=no_mail.pk, actor=world.clerk)
    UserFactory(username="taken@example.org", email="taken@example.org")
    taken = world.patient(email="taken@example.org")
    with pytest.raises(Duplicate, match="already the login of someone else"):
        portal_invite(patient_id=taken.pk, actor=world.clerk)
    outsider = MembershipFactory(practice=PracticeFactory(), user=UserFactory(username="outsider")).user
    p = world.patient(email="p@example.org")
    with pytest.raises(PermissionDenied):
        portal_invite(patient_id=p.pk, actor=outsider)
    with pytest.raises(NotFound):
        portal_invite(patient_id=999999, actor=world.clerk)
    assert not PortalEvent.objects.exists()


def test_disable_stops_the_login_and_a_new_invitation_enables_it(world, portal_patient, client):
    sign_in(client, portal_patient)
    portal_disable(patient_id=portal_patient.pk, actor=world.manager, reason="patient asked")
    portal_patient.refresh_from_db()
    assert portal_status(portal_patient) == "disabled" and patient_for_user(portal_patient.user) is None
    assert client.get(reverse("portal:brand", args=[portal_patient.practice_id])).status_code == 200
    with pytest.raises(RuleViolation, match="no active portal access"):
        portal_disable(patient_id=portal_patient.pk, actor=world.manager, reason="again")
    portal_invite(patient_id=portal_patient.pk, actor=world.clerk, reason="back")
    portal_patient.user.refresh_from_db()
    assert portal_patient.user.is_active


def test_staff_login_never_becomes_a_patients(world):
    p = world.patient(email="clerk2@example.org")
    p.user = world.clerk
    p.save()
    with pytest.raises(RuleViolation, match="staff login"):
        portal_invite(patient_id=p.pk, actor=world.manager)
    assert patient_for_user(world.clerk) is None


def test_statement_codes_are_unique_readable_and_snapshot_the_balance(world):
    p = world.patient(date_of_birth=date(1980, 5, 17))
    enc, claim = world.visit(p, date(2026, 3, 3), charge="100.00")
    world.remit(claim, pr="45.00", paid="55.00")
    st = statement_issue(patient_id=p.pk, actor=world.clerk)
    assert len(st.code) == 8 and set(st.code) <= set("ABCDEFGHJKMNPQRSTUVWXYZ23456789")
    assert st.due_now == 45 and st.display_code == f"{st.code[:4]}-{st.code[4:]}"
    assert normalise_code(st.display_code.lower()) == st.code
    with pytest.raises(InvalidInput, match="8 letters"):
        normalise_code("O0O0-1111")
    with pytest.raises(IntegrityError), transaction.atomic():  # the database refuses a bad code
        Statement.objects.filter(pk=st.pk).update(code="lower123")
    with pytest.raises(Exception, match="not allowed"), transaction.atomic():
        Statement.objects.filter(pk=st.pk).delete()


def test_example_p_lock_five_wrong_dates_of_birth_lock_the_statement_15_minutes(world):
    p = world.patient(date_of_birth=date(1980, 5, 17))
    st = statement_issue(patient_id=p.pk, actor=world.clerk)
    assert guest_statement_open(code=st.display_code, date_of_birth=date(1980, 5, 17)).pk == st.pk
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for i in range(4):
            with pytest.raises(NotFound, match="no statement matches"):
                guest_statement_open(code=st.code, date_of_birth=date(1980, 5, 18 + i), ip="203.0.113.9")
        st.refresh_from_db()
        assert st.guest_failures == 4 and st.guest_locked_until is None
        with pytest.raises(NotFound):
            guest_statement_open(code=st.code, date_of_birth=date(1981, 1, 1), ip="203.0.113.9")
        st.refresh_from_db()
        assert st.guest_locked_until == start + timedelta(minutes=15)
        with pytest.raises(GuestLocked, match="try again in 15 minutes"):  # even the right one, while locked
            guest_statement_open(code=st.code, date_of_birth=date(1980, 5, 17))
    lock_event = PortalEvent.objects.get(patient=p, kind=PortalEvent.Kind.GUEST_LOCKED)
    assert "5 wrong dates of birth" in lock_event.detail and lock_event.ip_address == "203.0.113.9"
    assert PortalEvent.objects.filter(patient=p, kind=PortalEvent.Kind.GUEST_FAILED).count() == 4
    with time_machine.travel(start + timedelta(minutes=15, seconds=1), tick=False):
        assert guest_statement_open(code=st.code, date_of_birth=date(1980, 5, 17)).pk == st.pk
    with pytest.raises(NotFound, match="no statement matches"):  # an unknown code: the same answer
        guest_statement_open(code="ZZZZ-ZZZZ", date_of_birth=date(1980, 5, 17))


def test_a_right_date_of_birth_resets_the_count(world):
    p = world.patient(date_of_birth=date(1980, 5, 17))
    st = statement_issue(patient_id=p.pk, actor=world.clerk)
    for _ in range(4):
        with pytest.raises(NotFound):
            guest_statement_open(code=st.code, date_of_birth=date(2000, 1, 1))
    guest_statement_open(code=st.code, date_of_birth=date(1980, 5, 17))
    with pytest.raises(NotFound):
        guest_statement_open(code=st.code, date_of_birth=date(2000, 1, 1))
    st.refresh_from_db()
    assert st.guest_failures == 1 and st.guest_locked_until is None


def test_portal_events_are_append_only(world, portal_patient):
    ev = PortalEvent.objects.filter(patient=portal_patient).first()
    with pytest.raises(Exception, match="not allowed"), transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("UPDATE portal_portalevent SET detail = 'x' WHERE id = %s", [ev.pk])


def test_patients_never_reach_the_admin(client, portal_patient):
    sign_in(client, portal_patient)
    response = client.get("/admin/", follow=False)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.get("/admin/ledger/patient/").status_code == 302


def test_portal_headers(client, world):
    response = client.get(reverse("portal:brand", args=[world.practice.pk]))
    assert response["Content-Security-Policy"] == CSP and "'unsafe-inline'" not in CSP
    assert response["X-Frame-Options"] == "DENY"
    assert f"--brand: {world.practice.portal_colour}" in response.content.decode()


def test_a_login_given_a_staff_role_later_loses_its_open_portal_session(world, portal_patient, client):
    sign_in(client, portal_patient)
    home = reverse("portal:home")
    assert client.get(home).status_code == 200
    MembershipFactory(practice=world.practice, user=portal_patient.user)
    response = client.get(home)
    assert response.status_code == 302 and response["Location"].startswith("/portal/login/")
