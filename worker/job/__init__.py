"""One job, from a claimed manifest to its report: the fault boundary, the manifest input, the
poison-pill counter, the run itself, the usage check and the report files. Never decides
which job runs when (that is `worker.service`).
"""
