"""Customer notifications through a transactional outbox.

Every customer-visible change writes an :class:`~api.db.models.OutboxMessage` (and one
delivery row per endpoint registered for it) in the transaction of the change itself
(:mod:`api.notifications.outbox`, called from the one event-log helper). A delivery worker
(:mod:`api.notifications.delivery`) sends them: signed webhooks (:mod:`.webhooks`, Standard
Webhooks) or the SMS gateway (:mod:`.sms`), at least once, with exponential backoff.
"""
