"""The packaged Avro schemas of `agentlog.Event`, every released version (data only).

`v<N>/agentlog.Event.avsc` is version N; `agentlog.codec` loads them. Released
files never change; a change to the event models is released as a new version, which
must read all earlier ones.
"""

__all__: list[str] = []
