"""Where accepted mail goes: routing recipients, and storing each message once.

``routing`` decides for an address whether it is a local account (after alias
expansion), unknown here, or another domain's; ``accept`` adds the trace
header fields and hands the message to the store in one durable write, into
local INBOXes and the outbound queue. Delivering the queue is a later part.
"""
