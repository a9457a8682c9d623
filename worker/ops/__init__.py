"""What operators watch: the heartbeat file and health check, /metrics, the progress bar, and
`enroller status`. Observers only observe: nothing here changes what a job does.
"""
