-- PgBouncer auth_query for a database you do not own (docs/managed-databases.md).
--
-- Run it as a superuser, in EVERY database PgBouncer serves (PgBouncer before 1.20 has no
-- auth_dbname and looks users up in the database the client asked for), in one transaction:
--
--   psql -X -1 -v ON_ERROR_STOP=1 -v auth_user=pgbouncer_auth -d app -f auth_query.sql
--
-- Then give the auth user a password (it never appears here), for example with psql's \password:
--
--   \password pgbouncer_auth
--
-- and put the same password in the inventory's pgbouncer_auth_query_user (vault it). It is
-- re-runnable: a second run changes nothing. auth_user defaults to pgbouncer_auth, the PgBouncer
-- role's default pgbouncer_auth_query_user.name.
--
-- What it makes:
--   * the auth user: LOGIN, no other attribute, no password set here;
--   * schema pgbouncer, owned by the role running this file, no access for PUBLIC, USAGE for the
--     auth user only;
--   * pgbouncer.get_auth(p_usename text) RETURNS (p_user, p_password): the role's SCRAM verifier from
--     pg_authid, SECURITY DEFINER with a pinned search_path, EXECUTE for the auth user alone
--     (the PgBouncer role's default pgbouncer_auth_query is
--     "SELECT p_user, p_password FROM pgbouncer.get_auth($1)").
--
-- get_auth returns no row, so PgBouncer refuses the login, for a role that:
--   * is expired (VALID UNTIL in the past): PgBouncer before 1.24.1 did not check it itself
--     (CVE-2025-2291) and, with a pooled server connection, let an expired role in;
--   * is a superuser, a replication role, may bypass row security or create roles (an admin never
--     logs in through the pooler), or cannot log in;
--   * is a predefined role (pg_*).

\if :{?auth_user}
\else
  \set auth_user pgbouncer_auth
\endif

-- The owner of get_auth must read pg_authid. Managed offerings (RDS, Aurora, Cloud SQL, Azure)
-- deny that to every role they give you: stop here with one line rather than a function that fails
-- at the first login.
DO $check$
BEGIN
  IF NOT has_table_privilege('pg_catalog.pg_authid', 'SELECT') THEN
    RAISE EXCEPTION 'auth_query.sql: role % cannot read pg_catalog.pg_authid', current_user
      USING HINT = 'Run it as a superuser; a managed offering without one needs userlist mode (docs/managed-databases.md).';
  END IF;
END
$check$;

-- The auth user: created when missing, its attributes set either way (not its password).
SELECT format('CREATE ROLE %I LOGIN', :'auth_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'auth_user') \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT',
              :'auth_user') \gexec

CREATE SCHEMA IF NOT EXISTS pgbouncer;
REVOKE ALL ON SCHEMA pgbouncer FROM PUBLIC;

-- A get_auth of another shape (an older copy of this file) cannot be replaced in place: drop it.
DO $reshape$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_proc
             WHERE oid = pg_catalog.to_regprocedure('pgbouncer.get_auth(text)')
               AND proargnames IS DISTINCT FROM ARRAY['p_usename', 'p_user', 'p_password']) THEN
    DROP FUNCTION pgbouncer.get_auth(text);
  END IF;
END
$reshape$;

CREATE OR REPLACE FUNCTION pgbouncer.get_auth(p_usename text)
RETURNS TABLE (p_user name, p_password text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $get_auth$
  SELECT a.rolname, a.rolpassword
  FROM pg_catalog.pg_authid AS a
  WHERE a.rolname = p_usename
    AND a.rolcanlogin
    AND NOT a.rolsuper
    AND NOT a.rolreplication
    AND NOT a.rolbypassrls
    AND NOT a.rolcreaterole
    AND a.rolname !~ '^pg_'
    AND a.rolpassword IS NOT NULL
    AND (a.rolvaliduntil IS NULL OR a.rolvaliduntil > pg_catalog.now());
$get_auth$;

COMMENT ON FUNCTION pgbouncer.get_auth(text) IS
  'PgBouncer auth_query: the SCRAM verifier of a login role that may use the pooler (not expired, no admin attribute).';

REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;
SELECT format('GRANT USAGE ON SCHEMA pgbouncer TO %I', :'auth_user') \gexec
SELECT format('GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO %I', :'auth_user') \gexec

-- EXECUTE for the auth user alone: drop it from any other role that was given it.
SELECT format('REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM %s', g.grantee::regrole)
FROM pg_catalog.pg_proc AS p,
     LATERAL pg_catalog.aclexplode(p.proacl) AS g
WHERE p.oid = 'pgbouncer.get_auth(text)'::regprocedure
  AND g.grantee NOT IN (0, p.proowner, (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = :'auth_user'))
GROUP BY g.grantee \gexec
SELECT format('REVOKE ALL ON SCHEMA pgbouncer FROM %s', g.grantee::regrole)
FROM pg_catalog.pg_namespace AS n,
     LATERAL pg_catalog.aclexplode(n.nspacl) AS g
WHERE n.nspname = 'pgbouncer'
  AND g.grantee NOT IN (0, n.nspowner, (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = :'auth_user'))
GROUP BY g.grantee \gexec
