# Airflow image with this package's dependencies (see docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.11

# Airflow's documented way to extend its image: what the project adds is installed with the
# constraints the image was built with (${HOME}/constraints.txt), and apache-airflow is pinned to
# the image's own version so pip can neither up- nor downgrade Airflow or its providers. The
# exact pins of requirements.txt and constraints.txt serve the local virtualenv (make test); here
# only the package names are taken from requirements.txt and Airflow's constraints choose the
# versions it was tested with. A conflict fails the build.
COPY requirements.txt /opt/atlassian-cleanup/requirements.txt
RUN sed -E -e 's/#.*//' -e 's/[[:space:]]+//g' -e 's/[=<>!~;].*//' -e '/^$/d' -e '/^apache-airflow$/d' \
        /opt/atlassian-cleanup/requirements.txt > /opt/atlassian-cleanup/requirement-names.txt \
    && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/atlassian-cleanup/requirement-names.txt --constraint "${HOME}/constraints.txt"

COPY --chown=airflow:root dags/ /opt/airflow/dags/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/ /opt/airflow/include/
