"""An 835 is posted exactly once (issue 9, found 1): real threads on PostgreSQL, each with its own
connection, post the same file at the same moment: two postings of one pending file, an API
upload racing the nightly run (POST /remittance-files against POST /nightly-runs), the admin
upload racing the API upload of the same file. Afterwards the cash booked equals the file's
payments and every remittance claim was booked once, counted from the journal itself (one payer
entry per claim segment of the file, each claim decided once), not from the bookkeeping that
prevents it. And with the locks bypassed, the database alone refuses a second booking."""

import threading
from collections import Counter

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.test import Client
from django.urls import reverse

from ledger.access import system_user
from ledger.benchdata import build_books
from ledger.models import Claim, JournalEntry, JournalLine, Membership
from remittances import posting as remittances
from remittances.models import RemittanceClaim, RemittanceFile, RemittanceTransaction
from remittances.nightly import nightly_run
from remittances.posting import remittance_file_post
from remittances.receive import remittance_file_receive
from remittances.x12.generator import generate_835
from tests.api.conftest import make_api
from tests.credits.test_invariants import check_invariants
from tests.credits.test_races import race
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

PAYER_KINDS = ["payer_payment", "payer_credit", "payer_adjustment", "payer_credit_resolved"]


def books_and_file(*, claims: int, seed: int, plb=None):
    """A practice of its own with `claims` submitted claims, and an 835 paying them all (several
    checks of 100 claims), balanced: BPR02 = sum CLP04 - sum PLB."""
    practice, payer = build_books(patients=(claims + 1) // 2, encounters_per_patient=2, credits_per_patient=1,
                                  finalized=False, claim_prefix=f"R{seed}")
    numbers = list(Claim.objects.filter(practice=practice).order_by("pk").values_list("claim_number", flat=True))
    data = generate_835(claim_ids=numbers[:claims], seed=seed, payer_id=payer.payer_identifier,
                        claims_per_transaction=100, check_number=f"RACE{seed}", interchange_control_number=seed,
                        plb=plb)
    return practice, data


def assert_posted_once(practice, f, *, claims: int):
    """Read from the journal: one payer entry per claim segment of the file, each claim decided once,
    and the cash booked equal to the file's payments."""
    f.refresh_from_db()
    rows = RemittanceClaim.objects.filter(file=f)
    assert rows.count() == claims and not rows.filter(state="pending").exists()
    assert f.status == RemittanceFile.Status.POSTED
    memos = Counter(JournalEntry.objects.filter(practice=practice, kind="payer_payment")
                    .values_list("memo", flat=True))
    twice = {m: n for m, n in memos.items() if n > 1}
    assert twice == {}, f"{len(twice)} claims booked more than once, e.g. {next(iter(twice))}"
    assert len(memos) == rows.filter(state="posted").count() == claims
    decided = Counter(Claim.objects.filter(practice=practice, remittance_count__gt=0)
                      .values_list("remittance_count", flat=True))
    assert decided == {1: claims}
    cash = JournalLine.objects.filter(practice=practice, account="cash", entry__kind__in=PAYER_KINDS) \
        .aggregate(s=Sum("amount"))["s"]
    paid = RemittanceTransaction.objects.filter(file=f).aggregate(s=Sum("total_paid"))["s"]
    assert cash == paid == f.paid_total
    check_invariants(practice.pk)


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of 20 claims: many short transactions, so two postings really interleave."""
    monkeypatch.setattr(remittances, "POST_BATCH", 20)


def test_two_postings_of_one_pending_file_post_each_claim_once(small_batches):
    actor = system_user()
    overlapped = 0
    for seed in (11, 12, 13):
        practice, data = books_and_file(claims=400, seed=seed)
        f = remittance_file_receive(practice_id=practice.pk, data=data, filename="era.835", actor=actor).file

        def post():
            return remittance_file_post(file_id=f.pk, actor=actor)

        (_, a), (_, b) = race(post, post)
        assert a.posted + b.posted == 400  # each claim by one of them
        # one waited for rows the other was posting and found them taken (the old code posted them again)
        overlapped += a.skipped + b.skipped
        assert_posted_once(practice, f, claims=400)
    assert overlapped, "the two postings never met on the same rows: the race was not tested"


def test_api_upload_racing_the_nightly_run_posts_each_claim_once(small_batches):
    practice, data = books_and_file(claims=400, seed=21, plb=[("L6", "INTEREST", "-12.34"), ("CS", "ADJ", "5.00")])
    api = make_api(practice, name="ehr-upload")
    nightly_api = make_api(practice, name="ehr-nightly")
    from django.core.files.uploadedfile import SimpleUploadedFile

    def upload():
        r = api.post("/remittance-files", {"file": SimpleUploadedFile("era.835", data)}, fmt="multipart")
        assert r.status_code == 201, r.content
        return r.json()

    def nightly():
        # step 1 of the run posts received files: start it as soon as the upload has stored the file
        for _ in range(2000):
            if RemittanceFile.objects.filter(practice=practice, status="received").exists():
                break
            threading.Event().wait(0.005)
        r = nightly_api.post("/nightly-runs", {"reason": "End of day"})
        assert r.status_code == 201, r.content
        return r.json()

    (_, up), (_, run) = race(upload, nightly)
    assert up["status"] == "posted" and run["status"] == "succeeded"
    f = RemittanceFile.objects.get(pk=up["id"])
    assert_posted_once(practice, f, claims=400)
    # the PLB rows were booked once too: cash = sum CLP04 - sum PLB
    assert JournalEntry.objects.filter(practice=practice, kind="payer_adjustment").count() == 2


def test_admin_upload_racing_the_api_upload_of_the_same_file(small_batches):
    practice, data = books_and_file(claims=300, seed=31)
    api = make_api(practice, name="ehr")
    clerk = MembershipFactory(practice=practice, user=UserFactory(username="race-clerk"),
                              role=Membership.Role.BILLING).user
    from django.core.files.uploadedfile import SimpleUploadedFile

    def by_admin():
        client = Client()
        client.force_login(clerk)
        r = client.post(reverse("admin:remittances_remittancefile_upload"),
                        {"practice": practice.pk, "files": [SimpleUploadedFile("admin.835", data)]})
        assert r.status_code == 200
        (row,) = r.context["results"]
        return row["status"]

    def by_api():
        r = api.post("/remittance-files", {"file": SimpleUploadedFile("api.835", data)}, fmt="multipart")
        assert r.status_code == 201, r.content
        return r.json()["status"]

    (_, admin_status), (_, api_status) = race(by_admin, by_api)
    assert sorted([admin_status, api_status]) == ["duplicate", "posted"]
    (f,) = RemittanceFile.objects.filter(practice=practice, status__in=["received", "posted"])
    dup = RemittanceFile.objects.get(practice=practice, status="duplicate")
    assert dup.duplicate_of_id == f.pk and dup.content == b"" and dup.size == len(data)
    assert_posted_once(practice, f, claims=300)


def test_the_database_alone_refuses_a_second_booking_of_a_claim():
    """The posting code's lock and re-check bypassed (as if it had read stale pending rows, the
    defect found): the unique index of RemittanceBooking refuses the second entry and nothing of
    the second posting is written."""
    actor = system_user()
    practice, data = books_and_file(claims=30, seed=41)
    f = remittance_file_receive(practice_id=practice.pk, data=data, filename="era.835", actor=actor).file
    remittance_file_post(file_id=f.pk, actor=actor)
    lines_before = JournalLine.objects.count()
    stale = [remittances._Row(*v) for v in RemittanceClaim.objects.filter(file=f).order_by("segment")
             .values_list(*remittances.ROW_FIELDS)]
    txs = {t.pk: t for t in RemittanceTransaction.objects.filter(file=f)}
    real_claim_rows = remittances._claim_rows
    remittances._claim_rows = lambda model, ids, states=("pending",): set(ids)  # the bug: no re-check
    try:
        with pytest.raises(IntegrityError) as refused, transaction.atomic():
            remittances._post_claim_batch(stale, f=f, txs=txs, actor=actor, result=remittances.PostResult())
    finally:
        remittances._claim_rows = real_claim_rows
    assert refused.value.__cause__.diag.constraint_name == "remittance_booking_once_per_claim"
    assert JournalLine.objects.count() == lines_before
    assert_posted_once(practice, f, claims=30)


def test_a_posted_remittance_claim_never_changes_again():
    actor = system_user()
    practice, data = books_and_file(claims=3, seed=51)
    f = remittance_file_receive(practice_id=practice.pk, data=data, filename="era.835", actor=actor).file
    remittance_file_post(file_id=f.pk, actor=actor)
    rc = RemittanceClaim.objects.filter(file=f).first()
    with pytest.raises(IntegrityError, match="can never change again"), transaction.atomic(), \
            connection.cursor() as cur:
        cur.execute("UPDATE ledger_remittanceclaim SET state = 'pending' WHERE id = %s", [rc.pk])
    rc.refresh_from_db()
    assert rc.state == "posted"


def test_the_nightly_run_finishes_a_file_an_upload_left_half_posted():
    """A posting that stopped between batches (a crash) leaves the rest pending; the nightly run
    posts only the rest."""
    actor = system_user()
    practice, data = books_and_file(claims=100, seed=61)
    f = remittance_file_receive(practice_id=practice.pk, data=data, filename="era.835", actor=actor).file
    rows = [remittances._Row(*v) for v in RemittanceClaim.objects.filter(file=f).order_by("segment")
            .values_list(*remittances.ROW_FIELDS)[:40]]
    txs = {t.pk: t for t in RemittanceTransaction.objects.filter(file=f)}
    with transaction.atomic():  # one batch committed, then the process "died"
        remittances._post_claim_batch(rows, f=f, txs=txs, actor=actor, result=remittances.PostResult())
    assert RemittanceClaim.objects.filter(file=f, state="pending").count() == 60
    run = nightly_run(practice_id=practice.pk, actor=actor)
    assert run.remittances_posted == 1
    assert_posted_once(practice, f, claims=100)
