"""`import_835` commits batch by batch (issue 10, item 4): a real `manage.py import_835` process
killed with SIGKILL in the middle of a file has committed some batches and holds no lock; the
same command run again finishes the file, and nothing is posted twice."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.benchdata import build_books
from ledger.models import Claim
from remittances.models import RemittanceClaim, RemittanceFile
from remittances.x12.generator import generate_835
from tests.credits.test_nightly_safety import database_url_for_this_test
from tests.remittances.test_remittance_races import assert_posted_once

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
CLAIMS = 2000


def import_835(path, practice, *extra):
    env = dict(os.environ, DATABASE_URL=database_url_for_this_test(), DJANGO_SETTINGS_MODULE="config.settings_test")
    return subprocess.Popen([sys.executable, "manage.py", "import_835", str(path), "--practice", str(practice.pk),
                             "--json", *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_killed_import_then_rerun_posts_every_claim_once(tmp_path):
    practice, payer = build_books(patients=CLAIMS // 2, encounters_per_patient=2, credits_per_patient=1,
                                  finalized=False, claim_prefix="K")
    numbers = list(Claim.objects.filter(practice=practice).order_by("pk").values_list("claim_number", flat=True))
    path = tmp_path / "era.835"
    path.write_bytes(generate_835(claim_ids=numbers, seed=7, payer_id=payer.payer_identifier,
                                  claims_per_transaction=500, check_number="KILL7"))

    proc = import_835(path, practice, "--batch-size", "10")
    posted = RemittanceClaim.objects.filter(practice=practice, state="posted")
    deadline = time.monotonic() + 180
    while posted.count() < 50:  # a few batches committed while the process keeps going
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = posted.count()
    f = RemittanceFile.objects.get(practice=practice)
    assert 0 < done < CLAIMS  # really killed half-way: what was committed stays, the rest waits
    assert f.status == RemittanceFile.Status.RECEIVED
    assert RemittanceClaim.objects.filter(file=f, state="pending").count() == CLAIMS - done

    again = import_835(path, practice)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err.decode()[-2000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert (result["status"], result["resumed_file"], result["posted"]) == ("duplicate", f.pk, {"posted": CLAIMS})
    assert_posted_once(practice, f, claims=CLAIMS)

    third = import_835(path, practice)  # and once more: a duplicate, nothing left to post
    out, _ = third.communicate(timeout=120)
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["status"] == "duplicate" and "posted" not in result
    assert_posted_once(practice, f, claims=CLAIMS)
