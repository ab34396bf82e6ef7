"""qproc's web service: department inboxes, task forms and case pages, and the JSON API (see ``app``).

It imports the engine and nothing of the CLI; ``qproc serve`` starts it by name.
"""
