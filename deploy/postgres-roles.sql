-- Postgres roles of a production deployment; run once by the DBA (database owner or superuser):
--   psql -v migrator_password=… -v worker_password=… -v notifier_password=… -v gateway_password=… \
--        -f deploy/postgres-roles.sql postgresql://admin@postgres.example.internal/postgres?sslmode=verify-full
-- `orderstatus_migrator` owns the schema and is the only role with DDL rights: the migration Job logs in
-- as it. The long-running processes log in as their own roles, members of `orderstatus_app`, which may
-- read and write rows and nothing else (no CREATE, ALTER, DROP, TRUNCATE). The server must require TLS
-- (hostssl lines in pg_hba.conf): the manifests connect with sslmode=verify-full.

CREATE ROLE orderstatus_migrator LOGIN PASSWORD :'migrator_password';
CREATE ROLE orderstatus_app NOLOGIN;
CREATE ROLE orderstatus_worker   LOGIN IN ROLE orderstatus_app PASSWORD :'worker_password';
CREATE ROLE orderstatus_notifier LOGIN IN ROLE orderstatus_app PASSWORD :'notifier_password';
CREATE ROLE orderstatus_gateway  LOGIN IN ROLE orderstatus_app PASSWORD :'gateway_password';

CREATE DATABASE orderstatus OWNER orderstatus_migrator;
REVOKE ALL ON DATABASE orderstatus FROM PUBLIC;
GRANT CONNECT ON DATABASE orderstatus TO orderstatus_app;

\connect orderstatus
ALTER SCHEMA public OWNER TO orderstatus_migrator;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO orderstatus_app;

-- every table and sequence the migrations create from now on (they run as orderstatus_migrator) …
ALTER DEFAULT PRIVILEGES FOR ROLE orderstatus_migrator IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO orderstatus_app;
ALTER DEFAULT PRIVILEGES FOR ROLE orderstatus_migrator IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO orderstatus_app;
-- … and those that exist already (a database that was migrated before these roles)
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO orderstatus_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO orderstatus_app;
