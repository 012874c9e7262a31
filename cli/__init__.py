"""The `eaglerec` command (main.py) and the Airflow services it runs (orchestration.py): the one place that wires
the stages together. No other folder imports this one."""
