"""Who publishes and who consumes each topic, read from the source of `streams/`.

Why read the code rather than list it by hand: a hand-written list of producers and consumers
(the AsyncAPI document's, once) drifts the day a worker stops subscribing or starts publishing.
Here a consumer is an `EventConsumer(<topic>, ...)` built in a module, and a producer is a
`<...>publisher.publish(<event>)` call or an `<...>outbox.entry(<event>, ...)` / `outbox.accept(...)` (an event owed by
accepted work, published by the outbox: `streams/outbox_relay.py`); the event's type gives its
topic (`streams/topics.py`). `outbox.deliver_now()` sends what a domain store wrote into the outbox
itself (`model.updated`, by the model registry's transitions).
An argument whose event type cannot be read (no constructor call, no annotation) is an error that
names the line, so a new publish call is either understood or fixes itself with an annotation.

Raw byte publishes (`broker.publish(topic, bytes)`: `ragloop publish`, dead-letter replay, the
DLQ itself) send whatever topic they are given and are not part of these lists.

    >>> flows()["train.requests"].producers                                  # doctest: +SKIP
    ('feedback worker',)
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from schemas.events import Event
from streams.topics import TOPICS

STREAMS_DIR = Path(__file__).resolve().parent
_PUBLISHER_NAMES = ("publisher", "_publisher", "outbox")
_PUBLISH_CALLS = ("publish", "entry", "accept")  # publisher.publish(event); outbox.entry(event, ...); outbox.accept(event, ...)
# Events a domain store writes into the outbox itself, in the transaction of the change they announce (the model
# registry's transitions: models/announcements.py); `outbox.deliver_now()` is where a component sends them.
_STORE_WRITTEN = ("model.updated",)


@dataclass
class Flow:
    """The components that publish to and consume from one topic, in source order."""

    producers: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)


class FlowError(ValueError):
    """A publish or subscribe call whose topic cannot be read from the code."""


def component(module: str, roles: dict[str, str]) -> str:
    """A reader's name for the code in `module`: the role whose worker it is, the gateway, the CLI, or the module."""
    role = {path: name for name, path in roles.items()}.get(module)
    if role is not None:
        return f"{role} worker"
    if module.startswith("streams.gateway"):
        return "gateway"
    if module.startswith("streams.cli"):
        return "CLI"
    return module


@cache
def flows() -> dict[str, Flow]:
    """Every topic of the registry with its producers and consumers, as the code under `streams/` has them."""
    from streams.runtime import ROLES

    result = {name: Flow() for name in TOPICS}
    for path in sorted(STREAMS_DIR.rglob("*.py")):
        module = ".".join(path.relative_to(STREAMS_DIR.parent).with_suffix("").parts).removesuffix(".__init__")
        name = component(module, ROLES)
        published, consumed = scan(path)
        for topic in published:
            _add(result[topic].producers, name)
        for topic in consumed:
            _add(result[topic].consumers, name)
    return result


def _add(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)


def scan(path: Path) -> tuple[list[str], list[str]]:
    """(topics published, topics consumed) by the code in one file."""
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    reader = _Reader(tree, parents, path)
    published: list[str] = []
    consumed: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id == "EventConsumer" and node.args:
            consumed.append(reader.topic(node.args[0]))
        elif isinstance(node.func, ast.Attribute) and node.func.attr in _PUBLISH_CALLS and _is_publisher(node.func.value):
            published.extend(reader.published(node))
        elif isinstance(node.func, ast.Attribute) and node.func.attr == "deliver_now" and _is_publisher(node.func.value):
            published.extend(_STORE_WRITTEN)
    return published, consumed


def _is_publisher(receiver: ast.expr) -> bool:
    name = receiver.attr if isinstance(receiver, ast.Attribute) else receiver.id if isinstance(receiver, ast.Name) else ""
    return name in _PUBLISHER_NAMES


def topics_of(event: type[Event]) -> list[str]:
    """The topics `Publisher.publish(event)` may choose: its `type`, or every topic carrying it when the
    event picks its own topic (`Event.topic` overridden, as ChatRequest does for priority)."""
    if event.topic is not Event.topic:
        return [name for name, topic in TOPICS.items() if topic.event is event]
    return [event.model_fields["type"].default]


class _Reader:
    """Reads event types and topics from expressions of one module, by its constructor calls and annotations."""

    def __init__(self, tree: ast.Module, parents: dict[ast.AST, ast.AST], path: Path) -> None:
        self.tree, self.parents, self.path = tree, parents, path
        self.events = {topic.event.__name__: topic.event for topic in TOPICS.values()}

    def fail(self, node: ast.AST, what: str) -> FlowError:
        return FlowError(f"{self.path}:{getattr(node, 'lineno', '?')}: cannot tell {what} from `{ast.unparse(node)}`; "
                         "construct the event in the call, or annotate the name with its event class")

    def published(self, call: ast.Call) -> list[str]:
        lane = next((k.value for k in call.keywords if k.arg == "topic"), None)
        if lane is not None:
            return [self.topic(lane)]
        if not call.args:
            raise self.fail(call, "the event published")
        return [t for event in self.event_types(call.args[0]) for t in topics_of(event)]

    def topic(self, node: ast.expr) -> str:
        """`TOPICS["x"]`, `TOPICS["x"].name`, or a module-level name bound to one of them."""
        if isinstance(node, ast.Attribute) and node.attr == "name":
            return self.topic(node.value)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "TOPICS" \
                and isinstance(node.slice, ast.Constant) and node.slice.value in TOPICS:
            return str(node.slice.value)
        if isinstance(node, ast.Name):
            for statement in self.tree.body:
                if isinstance(statement, ast.Assign) and any(isinstance(t, ast.Name) and t.id == node.id for t in statement.targets):
                    return self.topic(statement.value)
        raise self.fail(node, "the topic")

    def event_types(self, node: ast.expr) -> list[type[Event]]:
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in self.events:
                return [self.events[func.value.id]]  # EventClass.model_validate(...)
            if isinstance(func, ast.Name) and func.id in self.events:
                return [self.events[func.id]]
            if isinstance(func, ast.Name):
                definition = self._function(func.id)
                if definition is not None and definition.returns is not None:
                    return self._annotated(definition.returns, node)
        if isinstance(node, ast.Name):
            return self._bound(node)
        raise self.fail(node, "the event published")

    def _annotated(self, annotation: ast.expr, at: ast.AST) -> list[type[Event]]:
        names = [n.id for n in ast.walk(annotation) if isinstance(n, ast.Name) and n.id in self.events]
        if not names:
            raise self.fail(at, "the event published")
        return [self.events[n] for n in dict.fromkeys(names)]

    def _function(self, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        return next((n for n in ast.walk(self.tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name), None)

    def _bound(self, name: ast.Name) -> list[type[Event]]:
        """The event type a name holds, from the innermost enclosing scope that binds it."""
        scope: ast.AST | None = self.parents.get(name)
        while scope is not None:
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
                found = self._binding(scope, name.id)
                if found is not None:
                    return found
            scope = self.parents.get(scope)
        raise self.fail(name, "the event published")

    def _binding(self, scope: ast.AST, name: str) -> list[type[Event]] | None:
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for arg in [*scope.args.posonlyargs, *scope.args.args, *scope.args.kwonlyargs]:
                if arg.arg == name and arg.annotation is not None:
                    return self._annotated(arg.annotation, arg)
        body = scope.body if isinstance(scope, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef)) else []
        for node in (n for statement in body for n in ast.walk(statement)):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
                return self._annotated(node.annotation, node)
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return self.event_types(node.value)
            if (isinstance(node, (ast.For, ast.AsyncFor)) and isinstance(node.target, ast.Name) and node.target.id == name
                    and isinstance(node.iter, ast.Name)):  # `for event in documents`, with `documents: list[Event]`
                return self._bound(node.iter)
        return None


def flows_mermaid() -> str:
    """Components and topics as a Mermaid flowchart: an arrow into a topic publishes, out of it consumes
    (docs/architecture.md embeds it; a test keeps it current)."""
    ident = lambda prefix, name: prefix + "".join(c if c.isalnum() else "_" for c in name)  # noqa: E731
    lines = ["flowchart LR"]
    for topic, flow in flows().items():
        if not flow.producers and not flow.consumers:
            continue
        lines.append(f'    {ident("t_", topic)}(["{topic}"])')
        lines += [f'    {ident("c_", p)}["{p}"] --> {ident("t_", topic)}' for p in flow.producers]
        lines += [f'    {ident("t_", topic)} --> {ident("c_", c)}["{c}"]' for c in flow.consumers]
    return "\n".join(lines)
