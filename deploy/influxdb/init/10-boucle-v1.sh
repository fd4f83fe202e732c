#!/bin/bash
# InfluxDB 2.7 first start (docker-entrypoint-initdb.d): runs once, after the image's
# DOCKER_INFLUXDB_INIT_* setup made the org, the bucket and the admin token, with the
# influx CLI already configured for that instance. Never runs again on existing data.
#
# Boucle speaks the v1-compatible API (/write, /query InfluxQL) so that one adapter
# serves InfluxDB 1.x, 2.x and 3. On 2.x that needs:
#  1. a DBRP mapping: InfluxQL database "$DOCKER_INFLUXDB_INIT_BUCKET", retention policy
#     "autogen" -> the bucket. (2.4+ also maps a bucket to a same-named database
#     virtually; an explicit mapping is kept across renames and shows in `influx v1 dbrp list`.)
#  2. v1 credentials for clients that only speak user/password (Grafana's InfluxQL
#     datasource): a read-only v1 authorization on the bucket.
# The gateway and the API authenticate with tokens (Authorization: Token ...), which the
# v1 endpoints accept as they are: no v1 user needed for them.
set -euo pipefail

org=${DOCKER_INFLUXDB_INIT_ORG:?}
bucket=${DOCKER_INFLUXDB_INIT_BUCKET:?}
bucket_id=${DOCKER_INFLUXDB_INIT_BUCKET_ID:-}
if [ -z "$bucket_id" ]; then
  bucket_id=$(influx bucket list --org "$org" --name "$bucket" --hide-headers | cut -f1)
fi

influx v1 dbrp create --org "$org" --db "$bucket" --rp autogen --bucket-id "$bucket_id" --default
echo "boucle init: InfluxQL database '$bucket' (rp autogen) -> bucket $bucket_id"

influx v1 auth create --org "$org" \
  --username "${GRAFANA_INFLUX_USER:?set GRAFANA_INFLUX_USER}" \
  --password "${GRAFANA_INFLUX_PASSWORD:?set GRAFANA_INFLUX_PASSWORD}" \
  --read-bucket "$bucket_id" --description "Grafana, read-only (Boucle)" > /dev/null
echo "boucle init: read-only v1 user '$GRAFANA_INFLUX_USER' for Grafana"
