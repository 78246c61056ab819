import json
import os
import subprocess
import sys
import tempfile
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from ledger.access import system_user
from ledger.benchdata import build_books, peak_mb
from ledger.models import Claim
from remittances.posting import remittance_file_post
from remittances.receive import remittance_file_receive
from remittances.x12.reader import iter_claims

PYX12_SNIPPET = """
import sys, time
import pyx12.params, pyx12.x12n_document
t0 = time.perf_counter()
params = pyx12.params.params()
with open(sys.argv[1]) as fd:  # parse and validate the whole file; no 997/HTML output
    ok = pyx12.x12n_document.x12n_document(params, fd, None, None)
print(time.perf_counter() - t0)
"""


GENERATE_SNIPPET = """
import json, sys
from remittances.x12.generator import generate_835
ids, out, seed, payer_id = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(ids) as fh:
    numbers = json.load(fh)
data = generate_835(claim_ids=numbers, seed=seed, payer_id=payer_id, claims_per_transaction=1000,
                    check_number=f"BENCH{seed}")
with open(out, "wb") as fh:
    fh.write(data)
"""


class Command(BaseCommand):
    help = ("Benchmark 835 remittances: build N claims in a practice of their own, generate a synthetic 835 paying "
            "them, then time reading, and receiving + posting end to end. Where pyx12 is installed, also time its "
            "parse-and-validate of the same file. Last line: one JSON object.")

    def add_arguments(self, parser):
        parser.add_argument("--claims", type=int, default=10_000)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, claims, seed, **options):
        # measure production behaviour: with DEBUG on Django keeps the last 9,000 statements (bulk inserts
        # included) in memory, which would be counted as the benchmark's own memory
        settings.DEBUG = False
        t0 = time.perf_counter()
        practice, payer = build_books(patients=(claims + 1) // 2, encounters_per_patient=2, credits_per_patient=1,
                                      finalized=False, claim_prefix=f"B{seed}")
        numbers = list(Claim.objects.filter(practice=practice).order_by("pk").values_list("claim_number", flat=True))
        numbers = numbers[:claims]
        data = self._generate(numbers, seed, payer.payer_identifier)
        self.stdout.write(f"built {len(numbers)} claims and a {len(data) / 1e6:.1f} MB 835 file in "
                          f"{time.perf_counter() - t0:.1f} s (practice {practice.pk})")

        # reading as posting reads: streamed, one claim at a time (memory stays flat as files grow)
        t0 = time.perf_counter()
        read_claims = sum(1 for _ in iter_claims(data, filename="bench.835"))
        read_s = time.perf_counter() - t0
        assert read_claims == len(numbers)
        self.stdout.write(f"read: {read_s:.2f} s ({len(numbers) / read_s:,.0f} claims/s)")

        actor = system_user()
        t0 = time.perf_counter()
        received = remittance_file_receive(practice_id=practice.pk, data=data, filename="bench.835", actor=actor)
        posted = remittance_file_post(file_id=received.file.pk, actor=actor)
        post_s = time.perf_counter() - t0
        self.stdout.write(f"receive + post end to end: {post_s:.2f} s ({len(numbers) / post_s:,.0f} claims/s); "
                          f"{posted.by_state}")

        pyx12_s = self._pyx12(data)
        if pyx12_s is None:
            self.stdout.write("pyx12: not installed (pip install pyx12 to compare)")
        else:
            self.stdout.write(f"pyx12 parse + validate of the same file: {pyx12_s:.2f} s")
        self.stdout.write(json.dumps({
            "claims": len(numbers), "read_s": round(read_s, 3), "post_s": round(post_s, 3),
            "claims_per_s": round(len(numbers) / post_s, 1), "peak_mb": peak_mb(),
            "pyx12_s": None if pyx12_s is None else round(pyx12_s, 3),
        }))

    def _generate(self, numbers, seed, payer_id) -> bytes:
        """The synthetic file is built in a child process: building it takes several times its size in
        memory, which is the benchmark's setup, not part of what is measured (peak_mb is this process's)."""
        with tempfile.TemporaryDirectory() as tmp:
            ids, out = os.path.join(tmp, "ids.json"), os.path.join(tmp, "bench.835")
            with open(ids, "w") as fh:
                json.dump(numbers, fh)
            subprocess.run([sys.executable, "-c", GENERATE_SNIPPET, ids, out, str(seed), payer_id], check=True,
                           cwd=settings.BASE_DIR)
            with open(out, "rb") as fh:
                return fh.read()

    def _pyx12(self, data: bytes):
        try:
            import pyx12  # noqa: F401  (optional: the yardstick is timed only when it is installed)
        except ImportError:
            return None
        with tempfile.NamedTemporaryFile(suffix=".835", delete=False) as fh:
            fh.write(data)
        try:
            out = subprocess.run([sys.executable, "-c", PYX12_SNIPPET, fh.name], capture_output=True, text=True,
                                 timeout=1800)
            if out.returncode != 0:
                self.stderr.write(f"pyx12 failed: {out.stderr.strip()[-300:]}")
                return None
            return float(out.stdout.strip().splitlines()[-1])
        finally:
            os.unlink(fh.name)
