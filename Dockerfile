# Airflow image with this package's pinned dependencies (see docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.11

COPY requirements.txt constraints.txt /opt/atlassian-cleanup/
# Pinning apache-airflow in requirements.txt stops pip from up- or downgrading the image's Airflow.
RUN pip install --no-cache-dir -r /opt/atlassian-cleanup/requirements.txt \
        -c /opt/atlassian-cleanup/constraints.txt

COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/ /opt/airflow/include/
