"""One enrollment as an upsert (design.md §4): the pure table (view, actions, observe, rules,
answers, collisions), which makes every decision, and the async driver that performs its
actions (task, reads, audio steps, driver, locks); and the requests it spends (requests).
Never touches the queue or writes a report.
"""
