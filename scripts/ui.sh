#!/usr/bin/env bash
# Starts Airflow (api-server, scheduler, dag-processor, triggerer: `airflow standalone`) on
# 127.0.0.1 with this repo's DAGs, so that runs can be triggered from the form.
#   scripts/ui.sh            # http://127.0.0.1:8080, Ctrl-C stops everything
#   PORT=8090 scripts/ui.sh
set -euo pipefail
source "$(dirname "$0")/airflow_env.sh"
PORT="${PORT:-8080}"
# Locally the DAG runs when you trigger it (or new raw data lands), not the moment it is
# unpaused for the last missed weekly slot. Export DEEPLAB_RETRAIN_SCHEDULE=@weekly to change.
export DEEPLAB_RETRAIN_SCHEDULE="${DEEPLAB_RETRAIN_SCHEDULE:-none}"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$PORT"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
# One shared JWT secret for all the services of this local instance.
SECRET_FILE="$AIRFLOW_HOME/jwt_secret"
[ -s "$SECRET_FILE" ] || python -c "import secrets; print(secrets.token_hex(32))" > "$SECRET_FILE"
export AIRFLOW__API_AUTH__JWT_SECRET="$(cat "$SECRET_FILE")"
PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
[ -s "$PASSWORDS" ] || python -c "import json, secrets; print(json.dumps({'admin': secrets.token_urlsafe(12)}))" > "$PASSWORDS"
PASSWORD="$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['admin'])" "$PASSWORDS")"
airflow db migrate > "$AIRFLOW_HOME/db_migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/db_migrate.log"; exit 1; }
cat <<MSG
================================================================================
 Airflow UI:  http://127.0.0.1:$PORT   (DAG: deeplab_retrain → Trigger)
 Login:       admin / $PASSWORD
 AIRFLOW_HOME $AIRFLOW_HOME   artifacts: $DEEPLAB_STORAGE_ROOT
 Logs of the services below; Ctrl-C stops them all.
================================================================================
MSG
exec airflow standalone
