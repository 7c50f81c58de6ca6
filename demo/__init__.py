"""The demo clinic: `manage.py seed_demo` and the builder behind it (`demo.clinic`).

An app of its own, at the top of the dependency graph: it writes through the services of
patients, pumps and refills exactly as the staff would, and nothing imports it, so no clinical
module carries demo tooling and the demo can never become a path the clinic's code depends on.
It is installed for its management command (`make run`, `make seed`).
"""
