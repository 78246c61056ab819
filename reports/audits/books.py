"""The daily checks of the books (workstream A1)."""
