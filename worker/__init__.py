"""The sync worker: RQ jobs that keep the mirror in step with Xero (see worker.jobs)."""
