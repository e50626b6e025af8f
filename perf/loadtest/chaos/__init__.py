"""`manage.py chaos`: faults injected under load into a throwaway copy of the stack, measured.

The run never touches the developer's databases: it starts its own PostgreSQL cluster, Redis
and gunicorn on free loopback ports (harness.py), drives locust traffic plus its own fixed-rate
probe (probe.py), injects the faults one after another (faults.py), and judges what the probe,
locust and the server's logs saw against each fault's expectation (report.py). runner.py ties
the phases together and guarantees that every process it started is stopped.
"""
