"""Portal accounts through the pages (issue 13, rule 23): the invitation journey, one-time and
expiring links, sign-in (counted by django-axes like the admin, its lockout page), staff and
non-patient logins refused, the one-time sign-in code, password reset, session limits, disabled
access, redirects only to this site, CSRF."""

import re
from datetime import timedelta
from urllib.parse import urlparse

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from ledger import services as ledger_services
from ledger.models import Membership
from portal.access import SESSION_CODE_OK
from portal.accounts import WRONG_LOGIN
from portal.models import PortalEvent
from portal.services import access_link, portal_disable, portal_invite
from tests.factories import MembershipFactory, UserFactory
from tests.portal.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/portal/login/"
NEW_PASSWORD = "Green-otter-7781"


def home() -> str:
    try:
        return reverse("portal:home")
    except NoReverseMatch:
        return "/portal/"


def sign_in(client, email, password, *, next_url=None, address="10.1.2.3"):
    data = {"email": email, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return client.post(LOGIN, data, REMOTE_ADDR=address)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def link_path(body: str) -> str:
    return urlparse(re.search(r"https?://\S+/portal/activate/\S+/", body).group(0)).path


def mailed_code(message) -> str:
    return re.search(r"^(\d{6})$", message.body, re.M).group(1)


def kinds(patient) -> list[str]:
    return list(PortalEvent.objects.filter(patient=patient).order_by("at", "pk").values_list("kind", flat=True))


def otp_on(world):
    ledger_services.practice_update(practice_id=world.practice.pk, changes={"portal_otp_required": True},
                                    actor=world.manager, reason="sign-in codes on", on_schedule_change=None)


# --- the invitation journey ----------------------------------------------------------------------

def test_invitation_journey_invite_link_password_sign_in_next(world, client, django_capture_on_commit_callbacks):
    p = world.patient(first_name="Eve", last_name="Stone", email="Eve.Stone@example.org")
    staff = Client()
    staff.force_login(world.clerk)
    with django_capture_on_commit_callbacks(execute=True):
        r = staff.post(reverse("admin:ledger_patient_portal_invite", args=[p.pk]), {"reason": "asked at the desk"})
    assert r.status_code == 302 and r.url.endswith("#tab-portal")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["eve.stone@example.org"]
    path = link_path(mail.outbox[0].body)

    page = client.get(path)
    assert page.status_code == 200 and "Set your password" in page.text and "eve.stone@example.org" in page.text
    weak = client.post(path, {"new_password1": "password", "new_password2": "password"})
    assert weak.status_code == 200 and 'aria-describedby="id_new_password2-errors' in weak.text
    r = client.post(path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert r.status_code == 302 and r.url == reverse("portal:login")
    again = client.get(path)  # the link works once: the password changed
    assert again.status_code == 400 and "This link no longer works" in again.text

    assert not signed_in(client)
    r = sign_in(client, " EVE.STONE@example.org ", NEW_PASSWORD, next_url="/portal/payments/?page=2")
    assert r.status_code == 302 and r["Location"] == "/portal/payments/?page=2"
    assert signed_in(client) and client.session[SESSION_CODE_OK] is True
    assert kinds(p) == ["invited", "activated", "signed_in"]
    ev = PortalEvent.objects.get(patient=p, kind=PortalEvent.Kind.SIGNED_IN)
    p.refresh_from_db()
    assert ev.actor_id == p.user_id and ev.ip_address == "10.1.2.3"

    r = client.post(reverse("portal:logout"))
    assert r.status_code == 302 and not signed_in(client) and kinds(p)[-1] == "signed_out"


def test_sign_in_without_next_goes_home(client, portal_patient):
    r = sign_in(client, portal_patient.email, PASSWORD)
    assert r.status_code == 302 and r["Location"] == home()


def test_a_link_used_once_is_refused_and_another_patients_uid_is_refused(client, portal_patient, other_patient):
    link = urlparse(access_link(portal_patient.user)).path
    uid, token = link.strip("/").split("/")[-2:]
    other_uid = urlparse(access_link(other_patient.user)).path.strip("/").split("/")[-2]
    assert client.get(f"/portal/activate/{other_uid}/{token}/").status_code == 400  # my token, their login
    r = client.post(link, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert r.status_code == 302
    r = client.post(link, {"new_password1": "Other-pass-9912", "new_password2": "Other-pass-9912"})
    assert r.status_code == 400
    portal_patient.user.refresh_from_db()
    assert portal_patient.user.check_password(NEW_PASSWORD)


def test_an_expired_link_is_refused(client, world):
    p = world.patient(email="late@example.org")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        link = urlparse(portal_invite(patient_id=p.pk, actor=world.clerk).link).path
    with time_machine.travel(start + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT - 60), tick=False):
        assert client.get(link).status_code == 200  # a minute before it ends: still good
    with time_machine.travel(start + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 1), tick=False):
        r = client.post(link, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
        assert r.status_code == 400 and "This link no longer works" in r.text
    p.refresh_from_db()
    assert not p.user.has_usable_password()


# --- sign-in refusals and the lockout ----------------------------------------------------------------

def test_five_wrong_passwords_lock_the_sign_in_and_the_right_one_is_refused(client, portal_patient):
    email = portal_patient.email
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for i in range(5):
            r = sign_in(client, email, f"guess-{i}")
            if i < 4:
                assert r.status_code == 200 and WRONG_LOGIN in r.text, i
                assert 'aria-describedby="id_password-errors"' in r.text
            else:
                assert r.status_code == 429
        r = sign_in(client, email, PASSWORD)
        assert r.status_code == 429 and not signed_in(client)
        assert "Too many failed sign-ins" in r.text and f"<strong>{email}</strong>" in r.text
        assert r["Retry-After"] == "900" and "portal/portal.css" in r.text and "admin" not in r.text.lower()
        assert sign_in(Client(), email, PASSWORD, address="10.9.9.9").status_code == 302  # another address
        clock.shift(timedelta(minutes=15, seconds=1))
        assert sign_in(client, email, PASSWORD).status_code == 302 and signed_in(client)
    assert kinds(portal_patient).count("signed_in") == 2


def test_staff_and_non_patient_logins_are_refused_like_a_wrong_password(client, world):
    staff = UserFactory(username="desk@example.org", email="desk@example.org", is_staff=True)
    MembershipFactory(practice=world.practice, user=staff, role=Membership.Role.BILLING)
    boss = UserFactory(username="root@example.org", email="root@example.org", is_superuser=True)
    member = UserFactory(username="member@example.org", email="member@example.org", is_staff=False)
    MembershipFactory(practice=world.practice, user=member, role=Membership.Role.BILLING)
    linked = world.patient(email="member@example.org")
    linked.user = member  # a patient record pointing at a staff role's login: still not a portal login
    linked.save()
    nobody = UserFactory(username="nobody@example.org", email="nobody@example.org", is_staff=False)
    inactive = UserFactory(username="gone@example.org", email="gone@example.org", is_staff=False, is_active=False)
    gone = world.patient(email="gone@example.org")
    gone.user = inactive
    gone.save()
    for user in (staff, boss, member, nobody, inactive):
        c = Client()
        r = sign_in(c, user.username, "pw")
        assert r.status_code == 200 and WRONG_LOGIN in r.text, user.username
        assert not signed_in(c), user.username
    assert not PortalEvent.objects.filter(kind=PortalEvent.Kind.SIGNED_IN).exists()


def test_a_patient_is_refused_at_the_admin(client, portal_patient):
    r = client.post("/admin/login/", {"username": portal_patient.user.username, "password": PASSWORD,
                                      "next": "/admin/"})
    assert r.status_code == 200 and not signed_in(client)
    sign_in(client, portal_patient.email, PASSWORD)
    assert signed_in(client)
    r = client.get("/admin/")
    assert r.status_code == 302 and "/admin/login/" in r["Location"]


def test_next_is_followed_only_to_this_site(client, portal_patient):
    for evil in ("https://evil.example", "//evil.example/portal/", "https://evil.example/portal/"):
        c = Client()
        r = sign_in(c, portal_patient.email, PASSWORD, next_url=evil)
        assert r.status_code == 302 and r["Location"] == home(), evil


def test_csrf_is_enforced_on_the_account_forms(portal_patient):
    c = Client(enforce_csrf_checks=True)
    assert c.post(LOGIN, {"email": portal_patient.email, "password": PASSWORD}).status_code == 403
    assert not signed_in(c)
    assert c.post(reverse("portal:password_reset"), {"email": portal_patient.email}).status_code == 403
    assert c.post(reverse("portal:code"), {"code": "123456"}).status_code == 403
    assert c.post(reverse("portal:code"), {"resend": "1"}).status_code == 403
    page = c.get(LOGIN)
    token = page.cookies["csrftoken"].value
    r = c.post(LOGIN, {"email": portal_patient.email, "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert r.status_code == 302 and signed_in(c)
    assert c.post(reverse("portal:logout")).status_code == 403 and signed_in(c)  # no token: still signed in
    assert not mail.outbox


# --- the one-time sign-in code ------------------------------------------------------------------------

def test_the_mailed_code_completes_the_sign_in(client, world, portal_patient):
    otp_on(world)
    r = sign_in(client, portal_patient.email, PASSWORD, next_url="/portal/credits/")
    assert r.status_code == 302 and r["Location"] == "/portal/code/?next=%2Fportal%2Fcredits%2F"
    assert signed_in(client) and client.session[SESSION_CODE_OK] is False
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [portal_patient.email]
    code = mailed_code(mail.outbox[0])
    assert code not in str(dict(client.session))  # only its hash is kept
    page = client.get(r["Location"])
    assert page.status_code == 200 and portal_patient.email in page.text
    assert page.text.count('id="id_next"') == 1 and page.text.count('name="next" value="/portal/credits/"') == 2
    assert client.get(LOGIN).status_code == 302  # a half-done sign-in goes to the code page
    key = client.session.session_key
    r = client.post("/portal/code/", {"code": code, "next": "/portal/credits/"})
    assert r.status_code == 302 and r["Location"] == "/portal/credits/"
    assert client.session[SESSION_CODE_OK] is True and client.session.session_key != key
    assert kinds(portal_patient)[-2:] == ["signed_in", "code_sent"]


def test_a_wrong_code_counts_down_and_the_last_try_signs_out(client, world, portal_patient):
    otp_on(world)
    sign_in(client, portal_patient.email, PASSWORD)
    wrong = str((int(mailed_code(mail.outbox[0])) + 1) % 1_000_000).zfill(6)
    for left in (4, 3, 2, 1):
        r = client.post("/portal/code/", {"code": wrong})
        assert r.status_code == 200 and f"That code is not right; {left} tr" in r.text
        assert 'aria-describedby="id_code-errors id_code_helptext"' in r.text and 'id="id_code_helptext"' in r.text
    r = client.post("/portal/code/", {"code": wrong})
    assert r.status_code == 302 and r["Location"].startswith(LOGIN) and not signed_in(client)
    assert PortalEvent.objects.filter(patient=portal_patient, kind=PortalEvent.Kind.CODE_FAILED).count() == 5


def test_an_expired_code_is_refused_and_a_new_code_is_rate_limited(client, world, portal_patient):
    otp_on(world)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        sign_in(client, portal_patient.email, PASSWORD)
        first = mailed_code(mail.outbox[0])
        r = client.post("/portal/code/", {"resend": "1"}, follow=True)
        assert "once a minute" in r.text and len(mail.outbox) == 1
        clock.shift(timedelta(minutes=settings.SETTLE_PORTAL_CODE_MINUTES, seconds=1))
        r = client.post("/portal/code/", {"code": first})
        assert r.status_code == 200 and "This code has expired" in r.text
        assert client.session[SESSION_CODE_OK] is False
        r = client.post("/portal/code/", {"resend": "1"}, follow=True)
        assert f"We sent a new code to {portal_patient.email}" in r.text and len(mail.outbox) == 2
        second = mailed_code(mail.outbox[1])
        if second != first:  # one chance in a million they are equal
            assert "not right" in client.post("/portal/code/", {"code": first}).text
        r = client.post("/portal/code/", {"code": second})
        assert r.status_code == 302 and client.session[SESSION_CODE_OK] is True


def test_a_code_mailed_to_another_patient_does_not_work_here(world, portal_patient, other_patient):
    otp_on(world)
    mine, theirs = Client(), Client()
    sign_in(mine, portal_patient.email, PASSWORD)
    sign_in(theirs, other_patient.email, PASSWORD, address="10.4.4.4")
    their_code = mailed_code(mail.outbox[1])
    my_code = mailed_code(mail.outbox[0])
    if their_code != my_code:
        assert "not right" in mine.post("/portal/code/", {"code": their_code}).text
    assert mine.session[SESSION_CODE_OK] is False
    assert Client().get("/portal/code/")["Location"].startswith(LOGIN)  # nobody signed in: to the sign-in page


# --- password reset --------------------------------------------------------------------------------------

def test_password_reset_mails_a_one_time_link_and_says_the_same_for_anyone(client, world, portal_patient):
    form = client.get(reverse("portal:password_reset"))
    assert form.status_code == 200 and 'for="id_email"' in form.text
    unknown = client.post(reverse("portal:password_reset"), {"email": "stranger@example.org"})
    staff = UserFactory(username="desk@example.org", email="desk@example.org", is_staff=True)
    MembershipFactory(practice=world.practice, user=staff)
    for_staff = client.post(reverse("portal:password_reset"), {"email": "desk@example.org"})
    assert not mail.outbox
    known = client.post(reverse("portal:password_reset"), {"email": portal_patient.email.upper()})
    assert unknown.status_code == for_staff.status_code == known.status_code == 200
    assert unknown.content == for_staff.content == known.content
    assert "If an account exists for that address" in known.text
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [portal_patient.email]
    assert kinds(portal_patient)[-1] == "reset_sent"

    path = link_path(mail.outbox[0].body)
    r = client.post(path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert r.status_code == 302 and kinds(portal_patient)[-1] == "password_reset"
    assert client.get(path).status_code == 400  # spent
    assert sign_in(Client(), portal_patient.email, PASSWORD).status_code == 200  # the old password: no more
    assert sign_in(Client(), portal_patient.email, NEW_PASSWORD).status_code == 302


def test_a_disabled_login_gets_no_reset_mail(client, world, portal_patient):
    portal_disable(patient_id=portal_patient.pk, actor=world.clerk, reason="moved away")
    client.post(reverse("portal:password_reset"), {"email": portal_patient.email})
    assert not mail.outbox
    r = sign_in(client, portal_patient.email, PASSWORD)
    assert r.status_code == 200 and WRONG_LOGIN in r.text


# --- sessions ----------------------------------------------------------------------------------------------

def test_a_session_ends_after_the_idle_minutes(client, portal_patient):
    idle = timedelta(minutes=settings.SETTLE_PORTAL_IDLE_MINUTES)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        assert sign_in(client, portal_patient.email, PASSWORD).status_code == 302
        clock.shift(idle - timedelta(minutes=1))
        assert client.get(home()).status_code == 200  # each page restarts the idle clock
        clock.shift(idle - timedelta(minutes=1))
        assert client.get(home()).status_code == 200
        clock.shift(idle + timedelta(seconds=1))
        r = client.get(home())
        assert r.status_code == 302 and r["Location"] == "/portal/login/?next=%2Fportal%2F"


def test_a_session_ends_after_the_max_hours_however_busy(client, portal_patient):
    start = timezone.now()
    hours = timedelta(hours=settings.SETTLE_PORTAL_SESSION_HOURS)
    step = timedelta(minutes=settings.SETTLE_PORTAL_IDLE_MINUTES - 1)
    with time_machine.travel(start, tick=False) as clock:
        sign_in(client, portal_patient.email, PASSWORD)
        elapsed = timedelta(0)
        while elapsed + step < hours:
            clock.shift(step)
            elapsed += step
            assert client.get(home()).status_code == 200, elapsed
        clock.shift(hours - elapsed + timedelta(seconds=1))
        r = client.get(home())
        assert r.status_code == 302 and r["Location"].startswith(LOGIN) and not signed_in(client)


def test_a_pending_code_keeps_the_pages_closed(client, world, portal_patient):
    otp_on(world)
    sign_in(client, portal_patient.email, PASSWORD)
    r = client.get(home())
    assert r.status_code == 302 and r["Location"] == "/portal/code/?next=%2Fportal%2F"


def test_disabled_access_ends_an_open_session(client, world, portal_patient):
    sign_in(client, portal_patient.email, PASSWORD)
    assert client.get(home()).status_code == 200
    portal_disable(patient_id=portal_patient.pk, actor=world.clerk, reason="patient asked")
    r = client.get(home())
    assert r.status_code == 302 and r["Location"].startswith(LOGIN)


def test_rounds_of_wrong_codes_stop_the_password_from_starting_a_sign_in(client, world, portal_patient):
    otp_on(world)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        for round_ in range(2):
            assert sign_in(client, portal_patient.email, PASSWORD).status_code == 302
            wrong = str((int(mailed_code(mail.outbox[-1])) + 1) % 1_000_000).zfill(6)
            for _ in range(settings.SETTLE_PORTAL_CODE_ATTEMPTS):
                r = client.post("/portal/code/", {"code": wrong})
            assert r["Location"].startswith(LOGIN) and not signed_in(client), round_
            clock.shift(timedelta(minutes=1))
        r = sign_in(client, portal_patient.email, PASSWORD)
        assert r.status_code == 200 and not signed_in(client) and len(mail.outbox) == 2
        assert "Too many wrong sign-in codes. Try again in 14 minutes" in r.text  # 15 from the last wrong code
        clock.shift(timedelta(minutes=14, seconds=1))
        r = sign_in(client, portal_patient.email, PASSWORD)
        assert r.status_code == 302 and r["Location"].startswith("/portal/code/") and len(mail.outbox) == 3


def test_reset_links_are_mailed_at_most_once_a_minute(client, portal_patient):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        first = client.post(reverse("portal:password_reset"), {"email": portal_patient.email})
        second = client.post(reverse("portal:password_reset"), {"email": portal_patient.email})
        assert first.content == second.content and len(mail.outbox) == 1
        clock.shift(timedelta(seconds=61))
        client.post(reverse("portal:password_reset"), {"email": portal_patient.email})
        assert len(mail.outbox) == 2
