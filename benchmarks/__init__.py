"""jobtrace's benchmark suite: ``python benchmarks/run.py [--quick]``.

Not part of the package. Needs ``benchmarks/requirements.txt`` (OpenTelemetry's
SDK for the comparison, pyairtable for the Airtable sections).
"""
