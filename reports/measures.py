"""The measures of DOMAIN rule 21 (workstream C)."""
