#!/bin/sh
# The Kafka ACLs of each process, least privilege (issue 23): run once by the platform's Kafka admin, e.g.
#   BOOTSTRAP=kafka-0.example.internal:9093 ADMIN_CONFIG=admin.properties sh deploy/kafka-acls.sh
# Same grants as the table in deploy/k8s/README.md and tests/apache_kafka/test_apache_security.py; checked by
# tests/unit/test_deploy.py. No process may read a topic it only writes (the gateway and the console never read the
# commands topic and its tokens), nor write one it only reads (only the worker writes events).
set -eu
acl() { kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" --add "$@"; }

# worker: reads commands (its group), writes events and dead letters
acl --allow-principal User:worker --operation Read --topic order-status.commands
acl --allow-principal User:worker --operation Read --group orderstatus-worker
acl --allow-principal User:worker --operation Write --topic order-status.events
acl --allow-principal User:worker --operation Write --topic order-status.commands.dlq

# notifier: reads events (its group)
acl --allow-principal User:notifier --operation Read --topic order-status.events
acl --allow-principal User:notifier --operation Read --group orderstatus-notifier

# gateway: writes commands, reads events (no group: every replica reads every event)
acl --allow-principal User:gateway --operation Write --topic order-status.commands
acl --allow-principal User:gateway --operation Read --topic order-status.events

# console: indexes the DLQ in its own group (reads a letter in full, and the DLQ's first offsets, without one);
# redrives a letter to the commands topic (Write; its idempotent producer's InitProducerId needs Write on some topic,
# no IdempotentWrite); the Health page's lag describes the worker's and the notifier's groups and the events topic
acl --allow-principal User:console --operation Read --topic order-status.commands.dlq
acl --allow-principal User:console --operation Read --group orderstatus-worker-console-dlq-index
acl --allow-principal User:console --operation Write --topic order-status.commands
acl --allow-principal User:console --operation Describe --topic order-status.events
acl --allow-principal User:console --operation Describe --group orderstatus-worker
acl --allow-principal User:console --operation Describe --group orderstatus-notifier
