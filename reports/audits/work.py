"""The weekly checks of the adjudication work (workstream A2)."""
