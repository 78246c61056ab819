"""The demo's portal (backoffice/demo_portal.py, run by `manage.py seed_demo`): the three printed
logins sign in on the portal's sign-in page with the printed password, each shows what the
printout says, the notice waits for an answer, and the printed statement code opens guest pay with
the printed date of birth. A second run creates nothing and prints the same."""

import re
from datetime import datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from adjudication.models import PatientNotice
from credits.models import Credit, Refund
from credits.selectors import patient_owes
from credits.services import credits_preselect
from ledger.models import Patient
from portal.models import PortalEvent, Statement
from portal.selectors import open_notices
from portal.services import guest_statement_open

pytestmark = pytest.mark.django_db

LOGIN_LINE = re.compile(r"^\s+(\S+@example\.com)\s+(\S+)\s+(.+)$", re.M)
GUEST_LINE = re.compile(r"statement code ([A-Z0-9]{4}-[A-Z0-9]{4}), date of birth (\d\d/\d\d/\d{4})")


@pytest.fixture
def seeded():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_the_printed_portal_logins_sign_in_and_show_what_the_printout_says(seeded, client):
    assert "http://127.0.0.1:8000/portal/" in seeded
    logins = LOGIN_LINE.findall(seeded)
    assert [email for email, _, _ in logins] == ["olivia.ortiz@example.com", "nora.quinn@example.com",
                                                 "rafael.reed@example.com"]
    for email, password, _ in logins:
        client.logout()
        response = client.post(reverse("portal:login"), {"email": email, "password": password})
        patient = Patient.objects.select_related("user").get(email=email)
        assert response.status_code == 302, (email, response.content[:500])
        assert int(client.session["_auth_user_id"]) == patient.user_id
        assert PortalEvent.objects.filter(patient=patient, kind=PortalEvent.Kind.SIGNED_IN).count() == 1
        assert not (patient.user.is_staff or patient.user.is_superuser)

    olivia = Patient.objects.get(email="olivia.ortiz@example.com")
    owes = patient_owes(olivia.pk)
    assert (owes.due_now, owes.available, owes.locked_held) == (Decimal("45.00"), Decimal("30.00"), Decimal("0.00"))
    credit = Credit.objects.get(patient=olivia, state=Credit.State.AVAILABLE)
    visit = olivia.encounters.due_now().get()
    preselected = credits_preselect(patient_id=olivia.pk, encounter_ids=[visit.pk], partial=True)
    assert preselected == {credit.pk: Decimal("30.00")}
    assert olivia.exclude_from_auto_apply  # the nightly leaves the credit for her to use on the pay page

    rafael = Patient.objects.get(email="rafael.reed@example.com")
    bought = Credit.objects.get(patient=rafael)
    assert (bought.source, bought.amount, bought.on_hand, bought.refund_hold) == (
        Credit.Source.PURCHASED, Decimal("200.00"), Decimal("85.00"), Decimal("90.00"))
    assert sorted(Refund.objects.filter(patient=rafael).values_list("amount", "state", "needs_approval")) == [
        (Decimal("25.00"), "issued", False), (Decimal("90.00"), "requested", True)]
    assert set(Refund.objects.filter(patient=rafael).values_list("requested_by", flat=True)) == {rafael.user_id}


def test_the_notice_waits_and_the_printed_statement_code_opens_with_the_printed_date_of_birth(seeded):
    nora = Patient.objects.get(email="nora.quinn@example.com")
    [case] = open_notices(nora)
    assert case.credit.on_hand == Decimal("50.00") and case.credit.source == Credit.Source.OVERPAYMENT
    assert PatientNotice.objects.filter(case=case).count() == 1 and not case.events.filter(kind="election").exists()

    code, dob = GUEST_LINE.search(seeded).groups()
    st = guest_statement_open(code=code, date_of_birth=datetime.strptime(dob, "%m/%d/%Y").date())
    assert (st.patient.email, st.due_now) == ("grace.hill@example.com", Decimal("85.00"))
    assert Statement.objects.count() == 1 and st.patient.user_id is None  # a guest: no login needed


def test_a_second_run_creates_nothing_and_prints_the_same_portal_logins(seeded):
    before = (Patient.objects.count(), Statement.objects.count(), PatientNotice.objects.count(),
              Credit.objects.count())
    out = StringIO()
    call_command("seed_demo", stdout=out)
    again = out.getvalue()
    assert (Patient.objects.count(), Statement.objects.count(), PatientNotice.objects.count(),
            Credit.objects.count()) == before
    assert LOGIN_LINE.findall(again) == LOGIN_LINE.findall(seeded)
    assert GUEST_LINE.search(again).groups() == GUEST_LINE.search(seeded).groups()
