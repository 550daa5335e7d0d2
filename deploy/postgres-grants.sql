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
GRANT SELECT, INSERT, UPDATE ON consumer_positions TO orderstatus_worker, orderstatus_notifier;

-- the notifier: reads an order's contacts, records each email (claim, finish, release)
GRANT SELECT ON orders, order_contacts TO orderstatus_notifier;
GRANT SELECT, INSERT, UPDATE, DELETE ON sent_notifications TO orderstatus_notifier;

-- the worker and the notifier: each moves its group's consumer positions forward in the transaction of its work
-- (INSERT … ON CONFLICT DO UPDATE) and reads them on an assignment (issue 24); neither deletes one
GRANT SELECT, INSERT, UPDATE ON consumer_positions TO orderstatus_worker, orderstatus_notifier;

-- every long-running process writes its own process_heartbeats row every 5 s (an upsert), marks it stopped, and
-- deletes rows that stopped beating a day ago; it reads only the columns those statements read (the conflict key,
-- the EXCLUDED values, beat_at), not the list of processes and hosts the console shows
GRANT SELECT (process_id, beat_at, interval_s, ready, partitions, state), INSERT, UPDATE, DELETE
      ON process_heartbeats TO orderstatus_worker, orderstatus_notifier, orderstatus_gateway;

-- the console (issue 21): its pages read orders, history, rules, the outbox and its cursors, processed commands,
-- emails; it changes no order, rule or command record
GRANT SELECT ON orders, order_goods_out_notes, order_reservations, order_coupons, order_history, order_contacts,
                statuses, transitions, rules_meta, processed_commands, outbox, outbox_cursor, sent_notifications
                TO orderstatus_console;
-- its outbox retry (`outbox retry`, adapters' unpark) moves parked rows to the end of their shard: delete and
-- insert again under the shard's locks, a missing shard cursor created; no UPDATE (the relay's marks stay the relay's)
GRANT INSERT, DELETE ON outbox TO orderstatus_console;
GRANT INSERT ON outbox_cursor TO orderstatus_console;
-- its email resend (`notifications resend`, notifier/resend.py): a new attempt row per recipient, then finished,
-- noted in doubt or released, as the notifier records its emails
GRANT INSERT, UPDATE, DELETE ON sent_notifications TO orderstatus_console;
-- its own tables: its heartbeat and every process's row for the Health page; the dead-letter index its indexer
-- upserts and prunes; sessions and one-time sign-in links (created, read, spent); the audit, append-only
GRANT SELECT, INSERT, UPDATE, DELETE ON process_heartbeats, dead_letter_index TO orderstatus_console;
GRANT SELECT, INSERT, DELETE ON console_sessions, console_sign_in_links TO orderstatus_console;
GRANT SELECT, INSERT ON console_audit TO orderstatus_console;

-- sequences (bigserial ids) of the tables each process inserts into, nextval only; the notifier inserts into none
GRANT USAGE ON SEQUENCE order_history_id_seq, outbox_id_seq TO orderstatus_worker;
GRANT USAGE ON SEQUENCE outbox_id_seq, console_audit_id_seq TO orderstatus_console;
