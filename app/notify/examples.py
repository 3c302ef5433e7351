"""The example handler of /submit-job (`dataProcessing`, also named `exampleJob` as in the spec's payloads).

It does real, observable work: it generates `rows` synthetic records (default 40, at most 10,000),
sums and hashes them in `steps` chunks with `stepMs` of pause each (so progress can be watched), and
returns the totals. `{"fail": true}` makes it fail halfway with a readable reason.
"""
import hashlib
import time

from app.projects import registry


def run(ctx):
    params = ctx.params
    rows = max(1, min(int(params.get("rows", 40)), 10_000))
    steps = max(1, min(int(params.get("steps", 10)), 100))
    pause = max(0, min(int(params.get("stepMs", 100)), 2_000)) / 1000
    digest, total = hashlib.sha256(), 0
    per_step = -(-rows // steps)
    for step in range(steps):
        ctx.check_cancelled()
        for i in range(step * per_step, min(rows, (step + 1) * per_step)):
            value = (i * 7919) % 1000
            total += value
            digest.update(f"{i}:{value};".encode())
        if params.get("fail") and step + 1 >= steps // 2:
            raise ValueError(f"dataProcessing failed on purpose after {step + 1} of {steps} steps")
        time.sleep(pause)
        ctx.progress(100 * (step + 1) / steps)
    return {"rows": rows, "sum": total, "sha256": digest.hexdigest(), "file": params.get("file")}


for _name in ("dataProcessing", "exampleJob"):
    registry.register(_name, queue="default", run=run, needs_project=False,
                      description="Example: processes synthetic rows with progress (see app/notify/examples.py)")
