"""Custom operators: thin adapters from Airflow tasks to fieldpipe's domain functions."""
