"""Engine tables (processes, instances, element instances, jobs, history, incidents)."""
