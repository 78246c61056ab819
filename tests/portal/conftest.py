"""Portal fixtures: a patient of `world`'s practice with a portal login (invited through the real
service, password set), a second patient of the same practice with their own login, and a patient
of another practice; `sign_in(client, patient)` gives a client that patient's portal session."""

import time
from datetime import date

import pytest

from ledger.models import Patient
from portal.access import SESSION_CODE_OK, SESSION_SIGNED_IN
from portal.services import portal_invite
from tests.factories import PatientFactory, PracticeFactory, UserFactory

PASSWORD = "Blue-heron-2044"


def with_login(patient: Patient, actor, *, password: str = PASSWORD) -> Patient:
    """Invite the patient (the real service) and set the password as the invitation link would."""
    user = portal_invite(patient_id=patient.pk, actor=actor, reason="test invitation").user
    user.set_password(password)
    user.save()
    return Patient.objects.select_related("user", "practice").get(pk=patient.pk)


@pytest.fixture
def portal_patient(world):
    p = world.patient(first_name="Ann", last_name="Lee", email="ann.lee@example.org", date_of_birth=date(1980, 5, 17))
    return with_login(p, world.clerk)


@pytest.fixture
def other_patient(world):
    """Another patient of the same practice, with their own login."""
    p = world.patient(first_name="Bob", last_name="Ray", email="bob.ray@example.org", date_of_birth=date(1975, 1, 2))
    return with_login(p, world.clerk)


@pytest.fixture
def foreign_patient(db):
    """A patient of another practice (with a login invited by that practice's superuser)."""
    admin = UserFactory(username="other-admin", is_superuser=True)
    p = PatientFactory(practice=PracticeFactory(name="Other Practice"), first_name="Cy", last_name="Dee",
                       email="cy.dee@example.org", date_of_birth=date(1990, 3, 4))
    return with_login(p, admin)


def sign_in(client, patient: Patient, *, code_ok: bool = True):
    """The client as the patient, signed in (and past the sign-in code) a moment ago."""
    client.force_login(patient.user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session[SESSION_SIGNED_IN] = int(time.time())
    session[SESSION_CODE_OK] = code_ok
    session.save()
    return client
