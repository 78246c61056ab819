"""The admin's "Run now" of the nightly run (issue 10, item 4): every row it writes names the person
who pressed the button (and their reason), never the system user, and a user who is not staff of
the practice is refused with nothing written. The rows are found without naming them: every row of
every model whose id is above what it was before the run."""

import pytest
from django.apps import apps
from django.conf import settings
from django.db.models import Max
from django.test import Client
from django.urls import reverse

from credits.models import Credit, CreditApplication, NightlyRun
from ledger.access import system_user
from ledger.errors import PermissionDenied
from ledger.models import Claim, Encounter, JournalEntry, JournalLine
from remittances.models import RemittanceBooking, RemittanceClaim, RemittanceFile
from remittances.nightly import nightly_run
from remittances.receive import remittance_file_receive
from remittances.x12.generator import ClaimSpec, generate_835
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

RUN_NOW = reverse("admin:credits_nightlyrun_run_now")
REASON = "Catch up after the outage"


def tables():
    """Every model with rows of its own and an increasing integer id, or one borrowed from the row
    it extends (history models included)."""
    def increasing(pk):
        return (pk.target_field if pk.is_relation else pk).get_internal_type() in ("AutoField", "BigAutoField")

    return [m for m in apps.get_models() if m._meta.managed and not m._meta.proxy and increasing(m._meta.pk)]


def high_water_marks() -> dict:
    return {m: m._base_manager.aggregate(top=Max("pk"))["top"] or 0 for m in tables()}


def rows_since(marks) -> dict:
    """{model: [rows written since `marks`]} for the models that got any."""
    out = {}
    for model, top in marks.items():
        rows = list(model._base_manager.filter(pk__gt=top).order_by("pk"))
        if rows:
            out[model] = rows
    return out


def writers(model, row) -> dict:
    """The user columns of a row that say who wrote it: on a history row only history_user (its
    other user columns copy the tracked row's, e.g. who created the credit long ago)."""
    if hasattr(model, "instance_type"):  # django-simple-history's historical model
        return {"history_user": row.history_user_id}
    return {f.name: getattr(row, f.attname) for f in model._meta.concrete_fields
            if f.is_relation and f.related_model is not None
            and f.related_model._meta.label == settings.AUTH_USER_MODEL}


def test_run_now_writes_every_row_as_the_manager_who_pressed_it(client, office, world):
    # step 1 of the run posts the 835 files received but not posted: Ben's claim decided (PR 30.00)
    era = generate_835(specs=[ClaimSpec("BEN-1", charge="200.00", paid="170.00",
                                        patient_responsibility=[("2", "30.00")])], interchange_control_number=77)
    waiting = remittance_file_receive(practice_id=world.practice.pk, data=era, filename="ben.835",
                                      actor=world.clerk).file
    assert waiting.status == RemittanceFile.Status.RECEIVED
    system = system_user()
    client.force_login(world.manager)
    marks = high_water_marks()  # after the login (it writes a login record)

    response = client.post(RUN_NOW, {"practice": world.practice.pk, "reason": REASON})

    run = NightlyRun.objects.latest("pk")
    assert response.status_code == 302 and response.url == reverse("admin:credits_nightlyrun_change", args=[run.pk])
    assert (run.status, run.triggered_by, run.application_count) == ("succeeded", world.manager, 2)  # Ana, Ben
    waiting.refresh_from_db()
    assert waiting.status == RemittanceFile.Status.POSTED
    written = rows_since(marks)
    # the run really wrote: its row, the 835's postings, the application, the journal, the history
    for model in (NightlyRun, RemittanceBooking, CreditApplication, JournalEntry, JournalLine,
                  Credit.history.model, Encounter.history.model, Claim.history.model):
        assert model in written, f"the run wrote no {model.__name__}"
    for model, rows in written.items():
        for row in rows:
            for column, user_id in writers(model, row).items():
                assert user_id == world.manager.pk, \
                    f"{model.__name__} #{row.pk}.{column} is user {user_id} (system: {system.pk}), not the manager"
    for model in (NightlyRun, CreditApplication, JournalEntry, Credit.history.model, Encounter.history.model):
        assert writers(model, written[model][0]), f"{model.__name__} names nobody"
    # and the reason typed in the form is on what the application step wrote
    assert {(a.nightly_run_id, a.reason) for a in written[CreditApplication]} == {(run.pk, REASON)}
    assert {e.memo for e in written[JournalEntry] if e.kind == JournalEntry.Kind.APPLICATION} == {REASON}
    for model in (Credit.history.model, Encounter.history.model):
        reasons = {h.history_change_reason for h in written[model]}
        assert all(reasons) and any(REASON in r for r in reasons), (model.__name__, reasons)
    # the rows the 835 posting updated in place name the manager too
    assert {rc.posted_by_id for rc in RemittanceClaim.objects.filter(file=waiting)} == {world.manager.pk}


def test_run_now_refuses_a_user_who_is_not_staff_of_the_practice_and_writes_nothing(client, office, world):
    client.force_login(office["b_staff"])  # a manager of another practice
    drifter = Client()
    drifter.force_login(UserFactory(username="drifter", is_staff=True))  # staff of no practice at all
    marks = high_water_marks()  # after the logins (they write login records)
    # practice A is not among the other practice's manager's choices
    response = client.post(RUN_NOW, {"practice": world.practice.pk, "reason": REASON})
    assert response.status_code == 200 and "practice" in response.context["form"].errors
    # not a member: no page
    assert drifter.post(RUN_NOW, {"practice": world.practice.pk, "reason": REASON}).status_code == 403
    # and the run itself checks who asks, whatever calls it
    with pytest.raises(PermissionDenied):
        nightly_run(practice_id=world.practice.pk, actor=office["b_staff"], reason=REASON)
    assert rows_since(marks) == {}
    office["ana_dos"].refresh_from_db()
    assert office["ana_dos"].balance == 60  # nothing applied
