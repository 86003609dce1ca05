"""The fold of the dead-letter topic: what became of every letter (`DeadLetterStates`),
and the topic read once to its end (`dead_letter_states`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import Message

from agentlog.consumers.dead_letters._headers import (
    ACTION,
    ATTEMPTS,
    CONNECT_EXCEPTION_CLASS,
    CONNECT_EXCEPTION_MESSAGE,
    CONSUMER_GROUP,
    CONSUMER_KIND,
    CONVERSATION,
    DEAD_LETTER_ID,
    DEAD_LETTERED_AT,
    ERROR,
    HANDLER,
    OPEN,
    ORIGIN_OFFSET,
    ORIGIN_PARTITION,
    ORIGIN_TIMESTAMP,
    ORIGIN_TOPIC,
    PARKED_BEHIND,
    PROJECTION,
    PURGED,
    REDRIVEN,
    REOPENED,
    RESOLVED,
    SKIPPED,
    TRIGGER,
    Headers,
    headers_of,
)
from agentlog.errors import ConfigurationError
from agentlog.reader import read_partitions
from agentlog.settings import Settings


def _text(headers: dict[str, bytes], name: str) -> str | None:
    value = headers.get(name)
    return value.decode(errors="replace") if isinstance(value, bytes) else None


def _number(headers: dict[str, bytes], name: str) -> int | None:
    text = _text(headers, name)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass
class Held:
    """A record held on the dead-letter topic (a letter's or a parked one): its bytes and
    headers as they are there, and where it came from."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    origin_topic: str
    origin_partition: int
    origin_offset: int
    origin_timestamp_ms: int | None
    dlq_partition: int
    dlq_offset: int


@dataclass
class LetterState:
    """One dead letter of one consumer group, and what became of it."""

    id: str
    group: str
    kind: str
    state: str
    held: Held
    error: str
    exception_class: str
    exception_message: str
    attempts: int | None
    dead_lettered_at: str | None
    conversation: str | None = None
    handler: str | None = None
    # Trigger letters: the conversation's later events, in their order on the log.
    parked: list[Held] = field(default_factory=list)
    # The actions applied, in order (a control record that did not fit is left out).
    history: list[str] = field(default_factory=list)

    @property
    def key(self) -> bytes | None:
        return self.held.key

    @property
    def parks_conversation(self) -> bool:
        """A trigger letter holds its conversation until it is resolved."""
        return (
            self.kind == TRIGGER
            and self.conversation is not None
            and self.state
            in (
                OPEN,
                REDRIVEN,
                SKIPPED,
            )
        )

    def add_parked(self, held: Held) -> None:
        """Keep a parked record once (a runtime killed before committing parks it again),
        in log order."""
        if any(p.origin_offset == held.origin_offset for p in self.parked):
            return
        self.parked.append(held)
        self.parked.sort(key=lambda p: p.origin_offset)


# Which actions a letter in a state takes; any other control record changes nothing.
_TRANSITIONS: dict[str, dict[str, str]] = {
    OPEN: {REDRIVEN: REDRIVEN, SKIPPED: SKIPPED, PURGED: PURGED},
    REDRIVEN: {RESOLVED: RESOLVED, REOPENED: OPEN, PURGED: PURGED},
    SKIPPED: {RESOLVED: RESOLVED, REOPENED: OPEN, PURGED: PURGED},
    RESOLVED: {PURGED: PURGED},
    PURGED: {},
}


class DeadLetterStates:
    """The dead-letter topic folded into letter states, per consumer group. Feed it the
    topic's records in order per partition (`add`); `dead_letter_states` does that for
    the whole topic."""

    def __init__(self) -> None:
        self.letters: dict[tuple[str, str], LetterState] = {}
        # Parked records whose letter was not seen (yet): by (group, letter id).
        self._waiting: dict[tuple[str, str], list[Held]] = {}
        # The next offset of each partition of the topic read so far.
        self.ends: dict[int, int] = {}

    def add(self, record: Message) -> LetterState | None:
        """Fold in one record of the topic; returns the letter it changed, if any."""
        # A record this process sent and folds in before reading it has no position yet.
        partition, offset = record.partition(), record.offset()
        if partition is None or offset is None or partition < 0:
            partition, offset = -1, -1
        else:
            self.ends[partition] = offset + 1
        headers = headers_of(record)
        named = dict(headers)
        group = _text(named, CONSUMER_GROUP) or ""
        action = _text(named, ACTION)
        if action is not None:
            return self._control(group, _text(named, DEAD_LETTER_ID) or "", action, named)
        held = Held(
            record.key(),
            record.value(),
            headers,
            _text(named, ORIGIN_TOPIC) or "",
            _number(named, ORIGIN_PARTITION) or 0,
            _number(named, ORIGIN_OFFSET) or 0,
            _number(named, ORIGIN_TIMESTAMP),
            partition,
            offset,
        )
        behind = _text(named, PARKED_BEHIND)
        if behind is not None:
            letter = self.letters.get((group, behind))
            if letter is None:
                self._waiting.setdefault((group, behind), []).append(held)
                return None
            letter.add_parked(held)
            return letter
        letter_id = _text(named, DEAD_LETTER_ID) or f"{record.topic()}/{partition}/{offset}"
        if (group, letter_id) in self.letters:
            return None  # sent twice (a consumer killed between sending and committing)
        letter = LetterState(
            id=letter_id,
            group=group,
            kind=_text(named, CONSUMER_KIND) or PROJECTION,
            state=OPEN,
            held=held,
            error=_text(named, ERROR) or "",
            exception_class=_text(named, CONNECT_EXCEPTION_CLASS) or "",
            exception_message=_text(named, CONNECT_EXCEPTION_MESSAGE) or "",
            attempts=_number(named, ATTEMPTS),
            dead_lettered_at=_text(named, DEAD_LETTERED_AT),
            conversation=_text(named, CONVERSATION),
            handler=_text(named, HANDLER),
        )
        self.letters[(group, letter_id)] = letter
        for waiting in self._waiting.pop((group, letter_id), []):
            letter.add_parked(waiting)
        return letter

    def _control(
        self, group: str, letter_id: str, action: str, named: dict[str, bytes]
    ) -> LetterState | None:
        letter = self.letters.get((group, letter_id))
        if letter is None:
            return None
        applied = self.apply(
            letter,
            action,
            error=_text(named, ERROR),
            exception_class=_text(named, CONNECT_EXCEPTION_CLASS),
        )
        return letter if applied else None

    def apply(
        self,
        letter: LetterState,
        action: str,
        *,
        error: str | None = None,
        exception_class: str | None = None,
    ) -> bool:
        """Move the letter on by `action`, if its state takes it (a second redrive does
        not: it was applied once); says whether it did."""
        after = _TRANSITIONS.get(letter.state, {}).get(action)
        if after is None:
            return False
        letter.state = after
        letter.history.append(action)
        if action == REOPENED:
            letter.error = error or letter.error
            letter.exception_class = exception_class or letter.exception_class
        return True

    # -- questions ----------------------------------------------------------------------

    def visible(self, group: str | None = None) -> list[LetterState]:
        """Letters not purged (of one group, if given), oldest first."""
        return sorted(
            (
                letter
                for letter in self.letters.values()
                if letter.state != PURGED and (group is None or letter.group == group)
            ),
            key=lambda letter: (letter.dead_lettered_at or "", letter.id),
        )

    def find(self, letter_id: str, group: str | None = None) -> LetterState:
        """The letter with this id (of `group`, when several groups have one); a
        ConfigurationError that says what exists otherwise."""
        found = [
            letter
            for (g, i), letter in self.letters.items()
            if i == letter_id and (group is None or g == group)
        ]
        if not found:
            where = f" of group {group}" if group else ""
            raise ConfigurationError(
                f"no dead letter {letter_id!r}{where} (ids are topic/partition/offset; "
                "`agentlog dlq list` shows them)"
            )
        if len(found) > 1:
            groups = ", ".join(sorted(letter.group for letter in found))
            raise ConfigurationError(
                f"dead letter {letter_id!r} belongs to several groups ({groups}): pass --group"
            )
        return found[0]

    def open_by_group(self) -> dict[str, int]:
        """The DLQ depth: letters not yet dealt with (open, or a redrive under way), per
        group."""
        depth: dict[str, int] = {}
        for letter in self.letters.values():
            if letter.state in (OPEN, REDRIVEN, SKIPPED) and not (
                letter.kind == PROJECTION and letter.state == REDRIVEN
            ):
                depth[letter.group] = depth.get(letter.group, 0) + 1
        return depth

    def parked_conversations(self) -> dict[str, set[str]]:
        """The conversations trigger letters hold, per group."""
        parked: dict[str, set[str]] = {}
        for letter in self.letters.values():
            if letter.parks_conversation and letter.conversation is not None:
                parked.setdefault(letter.group, set()).add(letter.conversation)
        return parked


def control_note(record: Message) -> str | None:
    """What a control record of the dead-letter topic says, None for any other record."""
    named = dict(headers_of(record))
    action = _text(named, ACTION)
    if action is None:
        return None
    letter = _text(named, DEAD_LETTER_ID) or "?"
    group = _text(named, CONSUMER_GROUP) or "?"
    return f"dead letter {letter} of group {group}: {action}"


def dead_letter_states(settings: Settings, *, idle_timeout: float = 30.0) -> DeadLetterStates:
    """The whole dead-letter topic, read once to its end and folded."""
    states = DeadLetterStates()
    for record in read_partitions(settings, settings.dlq_topic, idle_timeout=idle_timeout):
        states.add(record)
    return states


def dead_letters_of(settings: Settings, group: str) -> set[str]:
    """The distinct dead letters `group` wrote to the dead-letter topic (a letter sent
    twice, by a projector killed between sending and committing, counts once)."""
    states = dead_letter_states(settings)
    return {letter.id for (g, _), letter in states.letters.items() if g == group}
