"""Back-office pages of the managers' reports (issue 12): reports_exports."""
