"""The one-shot commands that do not run the service: validate, plan, check, submit. Each is
called by `worker.cli`; none is imported by the engine below.
"""
