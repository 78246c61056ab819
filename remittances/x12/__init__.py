"""X12 835 (health care claim payment/advice) reader for settle.

Pure Python, no Django. ``read_835(data)`` returns a ``Remittance835File`` or
raises ``X12Error`` (the caller refuses the whole file); see docs/x12.md.
"""

from .errors import X12Error, X12Warning
from .generator import ClaimSpec, generate_835
from .models import (
    Adjustment,
    Claim,
    Group,
    Interchange,
    Party,
    Person,
    PLBAdjustment,
    Remittance835File,
    ServiceLine,
    Transaction835,
)
from .reader import Reader835, iter_claims, iter_transactions, read_835
from .tokenizer import Delimiters, Segment, Tokenizer

__all__ = [
    "Adjustment",
    "Claim",
    "ClaimSpec",
    "Delimiters",
    "Group",
    "Interchange",
    "PLBAdjustment",
    "Party",
    "Person",
    "Reader835",
    "Remittance835File",
    "Segment",
    "ServiceLine",
    "Tokenizer",
    "Transaction835",
    "X12Error",
    "X12Warning",
    "generate_835",
    "iter_claims",
    "iter_transactions",
    "read_835",
]
