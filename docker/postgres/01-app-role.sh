#!/bin/sh
# Runs once, when the postgres container initialises an empty data directory
# (docker-entrypoint-initdb.d), as the database superuser POSTGRES_USER (`iot`).
#
# Two roles, so that route-delivery never connects as a superuser (a superuser bypasses
# row-level security and hides a missing grant):
#   pulse_app        NOLOGIN, the application role of row-level security: route-delivery does
#                    `SET LOCAL ROLE pulse_app` in every dead-letter transaction;
#   route_delivery   LOGIN, what route-delivery connects as (DATABASE_URL): no SUPERUSER, no
#                    CREATEROLE, no BYPASSRLS; a member of pulse_app (without the GRANT, SET ROLE
#                    fails: "permission denied to set role"), and allowed to create tables in
#                    schema public, where the daemon applies config/schema.sql at start-up (it then
#                    owns dead_letter_messages and grants pulse_app SELECT, INSERT on it).
# The password comes from ROUTE_DELIVERY_DB_PASSWORD (docker-compose.yml: RD_DB_PASS).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="${ROUTE_DELIVERY_DB_PASSWORD:?ROUTE_DELIVERY_DB_PASSWORD is not set}" <<'SQL'
SELECT 'CREATE ROLE pulse_app NOLOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pulse_app') \gexec
SELECT format('CREATE ROLE route_delivery LOGIN PASSWORD %L', :'app_password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'route_delivery') \gexec
GRANT pulse_app TO route_delivery;
GRANT USAGE, CREATE ON SCHEMA public TO route_delivery;
SQL
