-- Postgres roles of a production deployment; run once by the DBA (database owner or superuser):
--   psql -v migrator_password=… -v worker_password=… -v notifier_password=… -v gateway_password=… \
--        -v console_password=… -f deploy/postgres-roles.sql postgresql://admin@postgres.example.internal/postgres?sslmode=verify-full
-- `orderstatus_migrator` owns the schema and is the only role with DDL rights: the migration Job logs in
-- as it (and so do the operators' tools that load rules or import orders). The long-running processes log in
-- as their own roles, members of `orderstatus_app` (which may connect and nothing more); each has only the
-- table rights it needs (issue 23, least privilege; tests/integration/test_postgres_roles.py checks them on a
-- real server): the gateway reads (and binds Idempotency-Keys), the worker writes its tables, the notifier
-- records its emails, the console reads for its pages and writes only its own tables and what its actions
-- change (deploy/postgres-grants.sql). No process may CREATE, ALTER, DROP or TRUNCATE. The server
-- must require TLS (hostssl lines in pg_hba.conf): the manifests connect with sslmode=verify-full.

CREATE ROLE orderstatus_migrator LOGIN PASSWORD :'migrator_password';
CREATE ROLE orderstatus_app NOLOGIN;
CREATE ROLE orderstatus_worker   LOGIN IN ROLE orderstatus_app PASSWORD :'worker_password';
CREATE ROLE orderstatus_notifier LOGIN IN ROLE orderstatus_app PASSWORD :'notifier_password';
CREATE ROLE orderstatus_gateway  LOGIN IN ROLE orderstatus_app PASSWORD :'gateway_password';
CREATE ROLE orderstatus_console  LOGIN IN ROLE orderstatus_app PASSWORD :'console_password';

CREATE DATABASE orderstatus OWNER orderstatus_migrator;
REVOKE ALL ON DATABASE orderstatus FROM PUBLIC;
GRANT CONNECT ON DATABASE orderstatus TO orderstatus_app;

\connect orderstatus
ALTER SCHEMA public OWNER TO orderstatus_migrator;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO orderstatus_app;

-- the table rights of each process are in deploy/postgres-grants.sql: the tables exist only once
-- `orderstatus migrate` has run, so that file runs after it (and after every migration that adds a table)
