"""Drive a running settle (bin/run) from several threads at once, as an outside tester would, and
check the books afterwards. Prints what it did and, last, one JSON line of figures.

    SETTLE=http://127.0.0.1:8000/api/v1 BILLING=<token> BILLING2=<token> MANAGER=<token> \
        python scripts/attack.py --claims 400

BILLING and BILLING2 are billing tokens of the same practice (two integrations acting for
different people or none), MANAGER a manager token of that practice. Scenarios:

1. an 835 uploaded twice at once while two nightly runs and staff payments run: it is posted
   once (the cash booked equals the file's payments, the second upload is a duplicate);
2. refunds split under the approval threshold, from two tokens at once: beyond the threshold
   in the practice's window they wait for a manager;
3. a manual credit above the practice's limit waits for a manager; its requester cannot approve;
4. payments, apply-credits, unlock and the nightly run on the same patients from many threads:
   no 500s, and the API's balances add up (the database's own checks run in `check_books`);
5. adjudication: scans from two tokens at once while nightly runs apply credits and staff pay
   with them: never two cases for one credit, no open case about money that is gone after a last
   scan; a refund proposal approved by the proposer (refused), by billing (refused) and by the
   manager twice at once (one refund); a proposal above the money left is refused.

MANAGER2, when set, is a second manager's token: then two different managers race to approve.
"""

import argparse
import json
import os
import sys
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from remittances.x12.generator import ClaimSpec, generate_835  # noqa: E402  (pure Python, no Django)

API = os.environ.get("SETTLE", "http://127.0.0.1:8000/api/v1").rstrip("/")
STATUS = Counter()
LOCK = threading.Lock()


def call(method, path, token, *, json_body=None, files=None, key=None):
    headers = {"Authorization": f"Bearer {token}"}
    if method == "POST":
        headers["Idempotency-Key"] = key or str(uuid.uuid4())
    r = requests.request(method, API + path, headers=headers, json=json_body, files=files, timeout=600)
    with LOCK:
        STATUS[r.status_code] += 1
    if r.status_code >= 500:
        raise SystemExit(f"{method} {path}: {r.status_code} {r.text[:500]}")
    try:
        return r.status_code, r.json()
    except ValueError:
        raise SystemExit(f"{method} {path}: {r.status_code} not JSON: {r.text[:300]}") from None


def all_pages(path, token):
    out, url = [], path
    while url:
        _, body = call("GET", url, token)
        out += body["results"]
        url = body["next"].split("/api/v1", 1)[1] if body.get("next") else None
    return out


def setup_claims(token, n, tag):
    """n patients, each with a visit and a claim; returns [(patient, encounter, claim_number)]."""
    _, payer = call("POST", "/payers", token, json_body={"name": f"Attack payer {tag}", "payer_type": "commercial",
                                                          "payer_identifier": "1999999999"})

    def one(i):
        _, p = call("POST", "/patients", token, json_body={"account_number": f"ATK-{tag}-{i}", "first_name": "Ann",
                                                            "last_name": f"Attack{i}"})
        _, e = call("POST", "/encounters", token, json_body={"patient": p["id"], "date_of_service": "2026-06-01",
                                                              "charge": "200.00", "estimated_pr": "40.00"})
        number = f"ATK{tag}-{i}"
        call("POST", "/claims", token, json_body={"encounter": e["id"], "payer": payer["id"], "claim_number": number})
        return p["id"], e["id"], number

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def scenario_835(billing, billing2, rows):
    specs = [ClaimSpec(number, status="1", charge="200.00", paid="150.00", patient_responsibility=[("2", "30.00")])
             for _, _, number in rows]
    data = generate_835(specs=specs, interchange_control_number=int(uuid.uuid4().int % 900000000) + 1,
                        check_number=f"EFT{uuid.uuid4().hex[:8]}")
    expected = sum((Decimal("150.00") for _ in rows), Decimal(0))
    body = data.encode() if isinstance(data, str) else data
    results = {}

    def upload(i, token):
        results[f"upload{i}"] = call("POST", "/remittance-files", token, files={"file": (f"era-{i}.835", body)})

    def nightly(i, token):
        results[f"nightly{i}"] = call("POST", "/nightly-runs", token)

    def pay(i, token):
        pid, eid, _ = rows[i]
        results[f"pay{i}"] = call("POST", "/payments", token, json_body={
            "patient": pid, "encounter": eid, "amount": "10.00", "channel": "cash"})

    jobs = [(upload, 0, billing), (upload, 1, billing2), (nightly, 0, billing), (nightly, 1, billing2)]
    jobs += [(pay, i, billing if i % 2 else billing2) for i in range(0, len(rows), max(1, len(rows) // 20))]
    with ThreadPoolExecutor(len(jobs)) as pool:
        for f in [pool.submit(fn, i, tok) for fn, i, tok in jobs]:
            f.result()
    files = [results["upload0"][1], results["upload1"][1]]
    posted = [f for f in files if f.get("status") == "posted"]
    statuses = sorted(f.get("status") or f.get("error", {}).get("code", "?") for f in files)
    paid_total = sum((Decimal(f["paid_total"]) for f in posted), Decimal(0))
    print(f"835 uploaded twice during two nightly runs: {statuses}; paid booked {paid_total}, file pays {expected}")
    assert len(posted) == 1 and paid_total == expected, files
    return {"claims": len(rows), "upload_statuses": statuses, "paid_booked": str(paid_total)}


def scenario_split_refunds(billing, billing2, manager, patient_id):
    _, me = call("GET", "/practice", manager)
    threshold = Decimal(me["refund_approval_threshold"])
    amount = (threshold * Decimal("0.9")).quantize(Decimal("0.01"))
    # money to refund: a cash payment with no DoS makes an available credit
    _, paid = call("POST", "/payments", billing, json_body={"patient": patient_id, "amount": str(amount * 6),
                                                            "channel": "cash"})
    credit = next(c for c in paid["credits"] if c["state"] == "available")
    out = []

    def ask(i):
        tok = billing if i % 2 else billing2
        out.append(call("POST", f"/credits/{credit['id']}/refunds", tok, json_body={
            "amount": str(amount), "method": "check", "reason": f"split {i}", "reference": f"CHK{i}"}))

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(ask, range(6)))
    states = Counter(body.get("state", body.get("error", {}).get("code")) for _, body in out)
    for _, body in out:
        if "error" in body:
            print("  refused:", body["error"]["message"])
    issued_total = sum((Decimal(b["amount"]) for _, b in out if b.get("state") == "issued"), Decimal(0))
    print(f"six refunds of {amount} (threshold {threshold}) from two tokens at once: {dict(states)}; "
          f"issued without a manager {issued_total}")
    assert issued_total <= threshold, (threshold, issued_total, out)
    return {"threshold": str(threshold), "refund_states": dict(states), "issued_without_manager": str(issued_total)}


def scenario_manual_credit(billing, manager, patient_id):
    _, me = call("GET", "/practice", manager)
    limit = Decimal(me["manual_credit_approval_limit"])
    code, body = call("POST", "/credits/manual", billing, json_body={
        "patient": patient_id, "amount": str(limit + 1), "reason": "attack: above the limit"})
    assert code == 202, (code, body)
    code2, body2 = call("POST", f"/manual-credits/{body['id']}/approve", billing, json_body={"reason": "self"})
    print(f"manual credit above the limit {limit}: {code} {body.get('state')}; self-approval {code2}")
    assert code2 in (403, 409), (code2, body2)
    code3, _ = call("POST", "/credits/manual", billing, json_body={"patient": patient_id, "amount": "1e2",
                                                                   "reason": "loose amount"})
    assert code3 == 400
    return {"manual_above_limit": code, "self_approval": code2}


def scenario_storm(billing, billing2, rows):
    """Everything at once on the same few patients."""
    few = rows[:5]

    def op(i):
        tok = billing if i % 2 else billing2
        pid, eid, _ = few[i % len(few)]
        kind = i % 5
        if kind == 0:
            call("POST", "/payments", tok, json_body={"patient": pid, "amount": "7.00", "channel": "cash"})
        elif kind == 1:
            call("POST", f"/patients/{pid}/apply-credits", tok, json_body={"reason": "storm"})
        elif kind == 2:
            call("POST", "/credits/unlock", tok, json_body={"patient_ids": [pid], "reason": "storm"})
        elif kind == 3:
            call("POST", "/nightly-runs", tok)
        else:
            call("POST", "/payments", tok, json_body={"patient": pid, "encounter": eid, "amount": "3.00",
                                                      "channel": "check", "check_number": f"{i}"})

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(op, range(120)))
    balances = []
    for pid, _, _ in few:
        _, p = call("GET", f"/patients/{pid}", billing)
        credits = all_pages(f"/credits?patient={pid}", billing)
        on_hand = {s: sum((Decimal(c["on_hand"]) for c in credits if c["state"] == s), Decimal(0))
                   for s in ("available", "locked")}
        assert Decimal(p["available_credit"]) == on_hand["available"], (p, on_hand)
        assert Decimal(p["locked_credit"]) == on_hand["locked"], (p, on_hand)
        balances.append(p)
    print(f"120 mixed operations on 5 patients from 12 threads: no 500; patients' totals equal their credits")
    return {"storm_ops": 120}


def scenario_pages(billing, rows):
    """The back-office pages, read by staff from several threads while nightly runs go on."""
    site = API.split("/api/v1")[0]
    session = requests.Session()
    session.get(site + "/admin/login/", timeout=60)
    r = session.post(site + "/admin/login/", data={"username": os.environ.get("STAFF_USER", "billing"),
                                                    "password": os.environ.get("STAFF_PASSWORD", "demo"),
                                                    "csrfmiddlewaretoken": session.cookies.get("csrftoken"),
                                                    "next": "/admin/"}, headers={"Referer": site + "/admin/login/"},
                     timeout=60)
    assert "/admin/login/" not in r.url, "could not sign in to the admin"
    paths = ["/admin/credits/patientresponsibility/", "/admin/backoffice/lockedcredit/",
             "/admin/credits/nightlyrun/", "/admin/remittances/remittancefile/"]
    for pid, _, _ in rows[:10]:
        paths += [f"/admin/ledger/patient/{pid}/change/", f"/admin/ledger/patient/{pid}/payment/"]
    codes = Counter()

    def get(path):
        resp = session.get(site + path, timeout=120)
        with LOCK:
            codes[resp.status_code] += 1
        assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])

    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(call, "POST", "/nightly-runs", billing) for _ in range(2)]
        futures += [pool.submit(get, p) for p in paths * 3]
        for f in futures:
            f.result()
    print(f"{sum(codes.values())} back-office pages from 10 threads during two nightly runs: {dict(codes)}")
    return {"pages": dict(codes)}


def scenario_cases(billing, billing2, manager, manager2, rows):
    """Adjudication from several threads: scans racing nightly runs and payments, then four eyes."""
    patients = [pid for pid, _, _ in rows[: min(len(rows), 40)]]
    for pid in patients:  # money with no visit: an available credit for each
        call("POST", "/payments", billing, json_body={"patient": pid, "amount": "25.00", "channel": "cash"})
    results = Counter()

    def scan(i):
        code, _ = call("POST", "/cases/scan", billing if i % 2 else billing2, json_body={"reason": f"attack scan {i}"})
        with LOCK:
            results[f"scan {code}"] += 1

    def nightly(i):
        code, _ = call("POST", "/nightly-runs", billing2 if i % 2 else billing)
        with LOCK:
            results[f"nightly {code}"] += 1

    def pay_with_credit(i):
        pid = rows[i][0]
        code, _ = call("POST", f"/patients/{pid}/apply-credits", billing, json_body={"reason": "attack"})
        with LOCK:
            results[f"apply {code}"] += 1

    jobs = [(scan, i) for i in range(6)] + [(nightly, i) for i in range(2)]
    jobs += [(pay_with_credit, i) for i in range(0, len(patients), 4)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        list(pool.map(lambda j: j[0](j[1]), jobs))
    call("POST", "/cases/scan", billing, json_body={"reason": "attack: last scan"})
    cases = all_pages("/cases", billing)
    per_credit = Counter(c["credit"] for c in cases if c["credit"])
    twice = {k: n for k, n in per_credit.items() if n > 1}
    gone = [c["id"] for c in cases if c["state"] != "resolved" and Decimal(c["money_left"]) <= 0]
    print(f"6 scans, 2 nightly runs and {len(jobs) - 8} credit applications at once: {dict(results)}; "
          f"{len(cases)} cases, credits with two cases: {len(twice)}, open cases with no money left: {len(gone)}")
    assert not twice and not gone, (twice, gone)

    # four eyes on a resolution
    target = next(c for c in cases if c["state"] in ("identified", "investigating") and c["kind"] == "patient_credit"
                  and Decimal(c["money_left"]) >= Decimal("10.00"))
    left = Decimal(target["money_left"])
    code_over, _ = call("POST", f"/cases/{target['id']}/propose", billing, json_body={
        "kind": "refund_patient", "amount": str(left + 1), "method": "check", "reason": "attack: too much"})
    code, _ = call("POST", f"/cases/{target['id']}/propose", billing, json_body={
        "kind": "refund_patient", "amount": str(left), "method": "check", "reason": "attack: refund by check"})
    assert code in (200, 201), code
    code_self, _ = call("POST", f"/cases/{target['id']}/approve", billing, json_body={"reason": "self",
                                                                                       "reference": "CHK-SELF"})
    code_billing2, _ = call("POST", f"/cases/{target['id']}/approve", billing2, json_body={"reason": "billing",
                                                                                           "reference": "CHK-B2"})
    approvals = []

    def approve(tok):
        approvals.append(call("POST", f"/cases/{target['id']}/approve", tok, json_body={
            "reason": "attack: approved", "reference": f"CHK-{uuid.uuid4().hex[:6]}"})[0])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(approve, [manager, manager2 or manager]))
    _, case = call("GET", f"/cases/{target['id']}", manager)
    refunds = [r for r in all_pages(f"/refunds?patient={target['patient']}", manager)
               if Decimal(r["amount"]) == left and "attack: refund by check" in r["reason"]]
    print(f"proposal above the money left: {code_over}; proposer approving: {code_self}; billing approving: "
          f"{code_billing2}; two managers at once: {sorted(approvals)}; case {case['state']}; refunds {len(refunds)}")
    assert code_over == 409 and code_self == 403 and code_billing2 == 403, (code_over, code_self, code_billing2)
    assert min(approvals) == 200 and len(refunds) == 1 and case["state"] == "resolved", (approvals, refunds, case)
    return {"cases": len(cases), "case_races": dict(results), "four_eyes": [code_self, code_billing2],
            "double_approval": sorted(approvals)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--claims", type=int, default=300)
    args = ap.parse_args()
    billing, billing2, manager = os.environ["BILLING"], os.environ["BILLING2"], os.environ["MANAGER"]
    manager2 = os.environ.get("MANAGER2", "")
    tag = uuid.uuid4().hex[:6]
    rows = setup_claims(billing, args.claims, tag)
    figures = {"tag": tag}
    figures |= scenario_835(billing, billing2, rows)
    figures |= scenario_split_refunds(billing, billing2, manager, rows[-1][0])
    figures |= scenario_manual_credit(billing, manager, rows[-2][0])
    figures |= scenario_storm(billing, billing2, rows)
    figures |= scenario_pages(billing, rows)
    figures |= scenario_cases(billing, billing2, manager, manager2, rows)
    figures["status_codes"] = dict(sorted(STATUS.items()))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
