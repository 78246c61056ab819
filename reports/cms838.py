"""The Medicare credit balance report, CMS-838 layout (workstream E; DOMAIN rule 22)."""
