"""The no-op task RQ's baseline runs (importable by name from the bench's SimpleWorker)."""


def noop():
    return None
