# The scan (adjudication/scan.py) needs no index of its own: its candidate reads run along
# credit_onhand_practice_idx (patient credits by practice and patient), the one-case-per-money
# unique indexes of Case (its NOT EXISTS and ON CONFLICT), and case_queue_idx (the open cases of a
# practice by id, for the closing step); checked with EXPLAIN ANALYZE on 100,000 patients.
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("adjudication", "0007_refund_policies")]
    operations = []
