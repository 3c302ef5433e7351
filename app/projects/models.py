"""Project tables (projects, members, records, project jobs, files, rules, scenarios)."""
