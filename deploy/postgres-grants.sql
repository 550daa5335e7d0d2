-- The table rights of each process (issue 23, least privilege), granted by the owner of the tables after
-- `orderstatus migrate` (and again after any migration that adds a table; GRANT is idempotent):
--   psql -f deploy/postgres-grants.sql postgresql://orderstatus_migrator@postgres.example.internal/orderstatus?sslmode=verify-full
-- The roles come from deploy/postgres-roles.sql. tests/integration/test_postgres_roles.py runs both files' grants on
-- a real server and checks each role can do what its process does and no more.

-- the gateway: reads orders, rules and command outcomes; binds an Idempotency-Key to its first request
GRANT SELECT ON orders, order_goods_out_notes, order_reservations, order_coupons, order_history,
                statuses, transitions, rules_meta, processed_commands, outbox TO orderstatus_gateway;
GRANT SELECT, INSERT ON idempotency_keys TO orderstatus_gateway;

-- the worker: applies commands (orders, history, the outbox and its relay cursor, processed records), serves
-- the read API, and prunes what retention ages out (ORDERSTATUS_RETENTION_DAYS)
GRANT SELECT, INSERT, UPDATE, DELETE ON orders, order_history, order_reservations, order_coupons,
                                        order_goods_out_notes, outbox, outbox_cursor, processed_commands
                                        TO orderstatus_worker;
GRANT SELECT ON statuses, transitions, rules_meta, order_contacts TO orderstatus_worker;
-- a batch reads the rules' version FOR SHARE (waits for a rules load to finish), which Postgres allows only with
-- UPDATE on some column: one bookkeeping column, never the rules themselves
GRANT UPDATE (loaded_at) ON rules_meta TO orderstatus_worker;
GRANT SELECT, DELETE ON idempotency_keys, sent_notifications TO orderstatus_worker;

-- each consumer's position (issue 24), written in the transaction of the work it covers, read on assignment
GRANT SELECT, INSERT, UPDATE ON consumer_positions TO orderstatus_worker;

-- the notifier: reads an order's contacts, records each email (claim, finish, release)
GRANT SELECT ON orders, order_contacts TO orderstatus_notifier;
GRANT SELECT, INSERT, UPDATE, DELETE ON sent_notifications TO orderstatus_notifier;

-- sequences (identity columns) of the tables the worker and the notifier insert into
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO orderstatus_worker, orderstatus_notifier;
