"""fieldpipe: the domain logic shared by the ingestion API, the Airflow DAGs and the operators."""
