"""Objects in S3 (issue 29): `s3://bucket/key` named (`uri`), read into the job's work folder
(`store`), within a disk budget (`budget`). Imports only `worker.base`."""
