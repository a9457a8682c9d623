"""One enrollment as an upsert (design.md §4): the pure table (view, actions, observe, rules,
answers, collisions) and the async driver that performs its actions (task, reads, audio
steps, driver, locks) and the request plan it spends. Never touches the queue or a report.
"""
