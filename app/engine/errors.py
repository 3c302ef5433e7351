"""The engine's typed errors, with the spec's codes."""
from app.errors import AppError, Conflict, NotFound

JOB_NOT_FOUND_REASONS = ["Job key does not exist", "Job already completed or cancelled",
                         "Job belongs to different worker", "Job expired"]


class JobNotFound(NotFound):
    code, message = "JOB_NOT_FOUND", "Job not found"

    def __init__(self, job_key: str, *, reason: str | None = None, completing: bool = False):
        details = {"job_key": job_key}
        if completing:
            details["possible_reasons"] = JOB_NOT_FOUND_REASONS
        if reason:
            details["reason"] = reason
        super().__init__("Job not found or not accessible" if completing else None, details)


class JobNotCompletable(Conflict):
    code, message = "JOB_NOT_COMPLETABLE", "Job cannot be completed in current state"


class JobNotFailable(Conflict):
    code, message = "JOB_NOT_FAILABLE", "Job cannot be failed in current state"


class JobNotUpdatable(Conflict):
    code, message = "JOB_NOT_UPDATABLE", "Job cannot be updated in current state"


class InvalidVariables(AppError):
    status, code, message = 400, "INVALID_VARIABLES", "Invalid result variables provided"


class ProcessNotFound(NotFound):
    code, message = "PROCESS_NOT_FOUND", "Process not found"


class InstanceNotFound(NotFound):
    code, message = "PROCESS_INSTANCE_NOT_FOUND", "Process instance not found"


class InstanceNotActive(Conflict):
    code, message = "PROCESS_INSTANCE_NOT_ACTIVE", "Process instance is not active"


class InstanceBusy(AppError):
    status, code = 503, "INSTANCE_BUSY"
    message = "The job's process instance is held by another transaction; retry shortly"

    def __init__(self, job_key: str):
        super().__init__(details={"job_key": job_key}, headers={"Retry-After": "1"})


class IncidentNotFound(NotFound):
    code, message = "INCIDENT_NOT_FOUND", "Incident not found"


class IncidentNotOpen(Conflict):
    code, message = "INCIDENT_NOT_OPEN", "Incident is already resolved"
