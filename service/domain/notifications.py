"""The statuses of a notification record (`sent_notifications`, one per event, recipient and attempt), named once
for the notifier (`notifier/delivery.py`, `handlers.py`), its Postgres adapter and its fake.

`sending` is the claim taken just before SMTP DATA: it becomes `sent` or `failed` once the server answered, or is
dropped when the server certainly did not take the message. One that stays `sending` is an email in doubt: never
sent again by itself (DESIGN §7.2), only by a deliberate resend."""

from __future__ import annotations

SENDING, SENT, FAILED = "sending", "sent", "failed"
