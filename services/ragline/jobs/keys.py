"""The Redis keys of the job store and the version store, under a deployment's namespace: one
place, since both stores' scripts touch a job and its document together.

    {ns}:job:{id}               hash: the job record
    {ns}:job:{id}:embedded      bitmap: one bit per chunk index embedded
    {ns}:job:{id}:indexed       bitmap: one bit per chunk index indexed
    {ns}:job:{id}:content       hash: the job's document, kept while the job is open: body (its
                                bytes, which the chunk task refers to) and task (that chunk
                                task, to publish again if the broker loses it). Deleted when the
                                job completes or is cancelled; a failed job's expires with its
                                record (a requeued chunk dead letter still needs it); set to expire
                                after RAGLINE_JOB_RETENTION_S from the start as a backstop
    {ns}:job-events:{id}        pub/sub channel: a message on every change, for WatchJob
    {ns}:jobs:open              sorted set: unfinished job ids by the time of their last change
    {ns}:request:{request_id}   the job id an idempotency key created (24 h)
    {ns}:repair:lease           string: the gateway sweeping stuck jobs now (see
                                ragline.jobs.repair), so that one sweeps at a time
    {ns}:doc:{document_id}      hash: seq (last version given), live (searchable version), floor
                                (versions at or below it were deleted and must not come back)

Request ids and documents belong to a tenant. The default tenant's keys are the ones above,
as they were before tenancy, so a store written then is the default tenant's as it stands;
every other tenant's sit under `{ns}:t:{tenant}:` (`{ns}:t:acme:doc:handbook.pdf`), which no
default-tenant key can start with. A tenant id holds no `:` (ragline.tenants), so the tenant
segment ends where it should; the document and request ids come last, where any text is safe.
Jobs are keyed by their server-made ids, unique across tenants; the record names its tenant.
"""

from __future__ import annotations

from dataclasses import dataclass

from ragline.tenants import DEFAULT_TENANT


@dataclass(frozen=True)
class Keys:
    namespace: str

    def job(self, job_id: str) -> str:
        return f"{self.namespace}:job:{job_id}"

    @property
    def job_prefix(self) -> str:
        return f"{self.namespace}:job:"

    def events(self, job_id: str) -> str:
        return f"{self.namespace}:job-events:{job_id}"

    def bitmaps(self, job_id: str) -> list[str]:
        return [f"{self.job(job_id)}:embedded", f"{self.job(job_id)}:indexed"]

    def bitmap(self, job_id: str, kind: str) -> str:
        return f"{self.job(job_id)}:{kind}"

    def content(self, job_id: str) -> str:
        return f"{self.job(job_id)}:content"

    @property
    def repair_lease(self) -> str:
        return f"{self.namespace}:repair:lease"

    @property
    def open_jobs(self) -> str:
        return f"{self.namespace}:jobs:open"

    def request(self, tenant: str, request_id: str) -> str:
        return f"{self._owner(tenant)}:request:{request_id}"

    def doc(self, tenant: str, document_id: str) -> str:
        return f"{self._owner(tenant)}:doc:{document_id}"

    def _owner(self, tenant: str) -> str:
        return self.namespace if tenant == DEFAULT_TENANT else f"{self.namespace}:t:{tenant}"
