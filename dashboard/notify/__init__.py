"""Notifications: the board tells people in chat and mail when something needs them.

``destinations`` reads and checks Apprise URLs, ``neutralise`` makes upstream text
inert in each chat format, ``messages`` writes what a message says, ``watch``
notices transitions on the composed board, ``delivery`` turns them into stored
messages (digests, sent once) and sends them, ``tasks`` runs it all on the
``notify`` queue.
"""
