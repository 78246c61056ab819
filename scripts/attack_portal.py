"""Drive the patient portal of a running settle (bin/run, with its demo data) from several threads
at once, as an outside tester would, and check the books afterwards. Prints what it found and, last,
one JSON line of figures.

    SETTLE=http://127.0.0.1:8000 DATABASE_URL=$(.venv/bin/python scripts/devdb.py url) DEBUG=1 \
        .venv/bin/python scripts/attack_portal.py

It signs in as the demo's portal patients (password "demo") and reads the outcome from the database:

1. example O paid by five clicks at once on one Pay form while the nightly run runs: one card charge,
   one payment of 15.00, every answer the same receipt;
2. three refunds of 60.00 of a 150.00 credit asked at once from three sessions (the approval threshold
   is 100.00): one issued, one waiting for a manager, the third refused (only 30.00 left on hand);
3. ten wrong dates of birth for the demo's guest-pay statement at once: exactly five counted (four
   failures and the lock), then the right date of birth is refused while locked;
4. another patient's visit, credit and receipt ids: 404.

Run it on fresh demo data (it pays, buys and refunds for real; a second run finds nothing to pay)."""

import html as htmllib
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import django
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from credits.models import Credit, Refund  # noqa: E402
from ledger.models import Patient, Payment, SandboxCharge  # noqa: E402
from portal.models import PortalEvent, Statement  # noqa: E402

BASE = os.environ.get("SETTLE", "http://127.0.0.1:8000").rstrip("/")

INPUT = re.compile(r"<input\b([^>]*)>", re.I)
ATTR = re.compile(r'(\w[\w-]*)(?:="([^"]*)")?')
out = {}


def inputs(page: str) -> list[dict]:
    rows = []
    for m in INPUT.finditer(page):
        attrs = {k: htmllib.unescape(v or "") for k, v in ATTR.findall(m.group(1))}
        rows.append(attrs)
    return rows


def form_data(page: str, *, submit: tuple | None = None, form_index: int | None = None) -> dict:
    if form_index is not None:
        forms = re.findall(r"<form\b.*?</form>", page, re.S | re.I)
        page = forms[form_index]
    data = {}
    for a in inputs(page):
        name, typ = a.get("name"), a.get("type", "text")
        if not name:
            continue
        if typ in ("checkbox", "radio"):
            if "checked" in a:
                data.setdefault(name, []).append(a.get("value", "on"))
        elif typ != "submit":
            data[name] = a.get("value", "")
    if submit:
        data[submit[0]] = submit[1]
    return data


def login(email: str) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{BASE}/portal/login/").text
    data = form_data(page, form_index=0)
    data.update(email=email, password="demo")
    r = s.post(f"{BASE}/portal/login/", data=data, headers={"Referer": f"{BASE}/portal/login/"})
    assert "/portal/login/" not in r.url, ("login failed", email, r.url)
    return s


def post_all(sessions_and_data, url):
    results = [None] * len(sessions_and_data)
    barrier = threading.Barrier(len(sessions_and_data))

    def go(i, s, data):
        barrier.wait()
        r = s.post(url, data=data, headers={"Referer": url}, allow_redirects=True)
        results[i] = (r.status_code, r.url)

    threads = [threading.Thread(target=go, args=(i, s, d)) for i, (s, d) in enumerate(sessions_and_data)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# 1. Example O paid by a double (quintuple) click while the nightly run runs ------------------------------------
olivia = Patient.objects.get(email="olivia.ortiz@example.com")
s = login("olivia.ortiz@example.com")
page = s.get(f"{BASE}/portal/pay/").text
data = form_data(page, submit=("pay", "1"))
data.setdefault("card_token", ["tok_visa"])
charges_before = SandboxCharge.objects.count()
nightly = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "run_nightly", "--practice",
                            str(olivia.practice_id)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
res = post_all([(s, data)] * 5, f"{BASE}/portal/pay/")
nightly_out = nightly.communicate()[0].decode()[-300:]
pays = Payment.objects.filter(patient=olivia, channel="portal")
out["double_pay"] = {"answers": [r[0] for r in res], "receipts": sorted({r[1] for r in res}),
                     "portal_payments": [str(p.amount) for p in pays],
                     "card_charges": SandboxCharge.objects.count() - charges_before,
                     "nightly": nightly_out.strip()[-160:]}

# 2. Refunds split under the threshold, three at once -----------------------------------------------------------
page = s.get(f"{BASE}/portal/buy/").text
d = form_data(page, submit=None)
d.update(amount="150.00", card_token="tok_visa")
d.pop("visit", None)
r = s.post(f"{BASE}/portal/buy/", data=d, headers={"Referer": f"{BASE}/portal/buy/"})
credit = Credit.objects.filter(patient=olivia, source="purchased").latest("pk")
threshold = olivia.practice.refund_approval_threshold
pairs = []
for _ in range(3):
    sess = login("olivia.ortiz@example.com")
    pg = sess.get(f"{BASE}/portal/credits/{credit.pk}/refund/").text
    dd = form_data(pg)
    dd.update(amount="60.00", reason="Split to dodge the threshold")
    pairs.append((sess, dd))
res = post_all(pairs, f"{BASE}/portal/credits/{credit.pk}/refund/")
refunds = list(Refund.objects.filter(credit=credit).order_by("pk").values_list("amount", "state", "needs_approval"))
out["split_refunds"] = {"threshold": str(threshold), "answers": [r[0] for r in res],
                        "refunds": [(str(a), st, na) for a, st, na in refunds]}

# 3. Guest pay: ten wrong dates of birth at once, then the right one ------------------------------------------
st = Statement.objects.order_by("-pk").first()
dob = st.patient.date_of_birth
guests = []
for i in range(10):
    g = requests.Session()
    pg = g.get(f"{BASE}/portal/guest/").text
    dd = form_data(pg)
    dd.update(code=st.display_code, date_of_birth=f"1950-01-{i + 1:02d}")
    guests.append((g, dd))
before_failed = PortalEvent.objects.filter(patient=st.patient, kind="guest_failed").count()
res = post_all(guests, f"{BASE}/portal/guest/")
g = requests.Session()
pg = g.get(f"{BASE}/portal/guest/").text
dd = form_data(pg)
dd.update(code=st.display_code, date_of_birth=dob.isoformat())
right = g.post(f"{BASE}/portal/guest/", data=dd, headers={"Referer": f"{BASE}/portal/guest/"})
st.refresh_from_db()
out["guest_brute_force"] = {"answers": [r[0] for r in res],
                            "failed_events": PortalEvent.objects.filter(patient=st.patient, kind="guest_failed").count()
                            - before_failed,
                            "locked_events": PortalEvent.objects.filter(patient=st.patient,
                                                                        kind="guest_locked").count(),
                            "locked_until": str(st.guest_locked_until), "right_dob_after": right.status_code,
                            "right_dob_refused": "locked" in right.text}

# 4. Another patient's ids ---------------------------------------------------------------------------------------
nora = login("nora.quinn@example.com")
enc = olivia.encounters.first()
pay = Payment.objects.filter(patient=olivia).first()
urls = [f"/portal/visits/{enc.pk}/", f"/portal/credits/{credit.pk}/refund/", f"/portal/payments/{pay.pk}/receipt.pdf"]
out["other_patient"] = {u: nora.get(BASE + u, allow_redirects=False).status_code for u in urls}
ok = (out["double_pay"]["card_charges"] == 1 and out["double_pay"]["portal_payments"] == ["15.00"]
      and len(out["double_pay"]["receipts"]) == 1
      and sorted(st for _, st, _ in out["split_refunds"]["refunds"]) == ["issued", "requested"]
      and out["guest_brute_force"]["failed_events"] == 4 and out["guest_brute_force"]["locked_events"] >= 1
      and out["guest_brute_force"]["right_dob_refused"]
      and set(out["other_patient"].values()) == {404})
out["ok"] = ok
print(json.dumps(out, indent=1, default=str))
print(json.dumps(out, default=str))
sys.exit(0 if ok else 1)
