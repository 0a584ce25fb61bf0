-- The toolkit's monitoring role on a database you do not own (docs/managed-databases.md).
--
-- doctor, watch and calibrate read pg_stat_activity, pg_settings and pg_stat_statements (pg_monitor);
-- the session runbooks (terminate-idle-transactions, the bypass-session runbook) cancel and
-- terminate backends of non-superusers (pg_signal_backend). Nothing more: no superuser, no
-- CREATEROLE, no replication. Run it once per cluster (roles are cluster-wide), in one transaction,
-- as a superuser or the managed offering's admin role (rds_superuser, cloudsqlsuperuser):
--
--   psql -X -1 -v ON_ERROR_STOP=1 -v monitor_user=toolkit_monitor -v monitor_connlimit=2 -d postgres -f monitoring.sql
--
-- Then give it a password (it never appears here), for example with psql's \password:
--
--   \password toolkit_monitor
--
-- monitor_connlimit is the inventory's database_bypass_connections.monitoring: the slots the pool
-- budget leaves this role (docs/inventory.md). It is re-runnable: a second run changes nothing.
-- pg_stat_statements, if wanted, is CREATE EXTENSION pg_stat_statements in each database.

\if :{?monitor_user}
\else
  \set monitor_user toolkit_monitor
\endif
\if :{?monitor_connlimit}
\else
  \set monitor_connlimit 2
\endif

SELECT format('CREATE ROLE %I LOGIN', :'monitor_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'monitor_user') \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT %s',
              :'monitor_user', (:'monitor_connlimit')::int) \gexec

-- Granted only where missing: a GRANT of a role already held is a warning on PostgreSQL 16+.
SELECT format('GRANT %I TO %I', r.name, :'monitor_user')
FROM unnest(ARRAY['pg_monitor', 'pg_signal_backend']) AS r(name)
WHERE NOT pg_catalog.pg_has_role(:'monitor_user', r.name, 'MEMBER') \gexec
