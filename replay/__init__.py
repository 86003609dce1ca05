"""Rebuilding conversations and projections from offsets (the replay issue builds it).

What it will read already exists: `agentlog.consumers.projections.conversation_index`
records each conversation's partition and offset range.
"""
