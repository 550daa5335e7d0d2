"""The notifier (DESIGN §1): a separate consumer of the events topic that emails order contacts.

consumer.py (Kafka loop) → delivery.py (claim-then-send, at most once) → mailer.py (SMTP) and
store.py (Postgres records); email_render.py renders the templates in service/templates/;
resend.py is the operator's deliberate resend; process.py wires the process."""

from service.notifier.process import main, run_notifier

__all__ = ["main", "run_notifier"]
