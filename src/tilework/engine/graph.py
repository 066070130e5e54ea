"""Agent templates: editing operations, validation, and the runtime graph of a run.

Everything here is pure. :func:`apply_operations` checks a whole batch and reports
every fault in one pass; nothing is applied unless all of it is valid.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Catalog(Protocol):
    """What the graph needs to know about tile types."""

    def name_of(self, node_type_id: str) -> str | None: ...

    def is_input(self, node_type_id: str) -> bool: ...

    def needs_input(self, node_type_id: str) -> bool: ...

    def check_params(
        self, node_type_id: str, params: Mapping[str, Any]
    ) -> list[str]: ...


@dataclass
class TemplateNode:
    id: str
    node_type_id: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Template:
    nodes: dict[str, TemplateNode] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def copy(self) -> Template:
        return copy.deepcopy(self)

    def upstream(self, node_id: str) -> list[str]:
        return [source for source, target in self.edges if target == node_id]

    def downstream(self, node_id: str) -> list[str]:
        return [target for source, target in self.edges if source == node_id]

    def input_nodes(self, catalog: Catalog) -> list[TemplateNode]:
        return [n for n in self.nodes.values() if catalog.is_input(n.node_type_id)]


@dataclass
class OperationResult:
    template: Template
    created_nodes: dict[str, str]
    problems: list[str]
    applied: int


def apply_operations(
    template: Template, operations: Sequence[Mapping[str, Any]], catalog: Catalog
) -> OperationResult:
    """Apply ``operations`` in order to a copy of ``template``."""
    work = template.copy()
    created: dict[str, str] = {}
    problems: list[str] = []
    labels: dict[str, str] = {}

    for index, operation in enumerate(operations):
        if not isinstance(operation, Mapping):
            problems.append(f"operations[{index}]: must be an object")
            continue
        handler = _HANDLERS.get(str(operation.get("op")))
        if handler is None:
            problems.append(f"operations[{index}]: unknown op {operation.get('op')!r}")
            continue
        before = set(work.nodes)
        for problem in handler(work, operation, created, catalog):
            problems.append(f"operations[{index}] ({operation['op']}): {problem}")
        for node_id in set(work.nodes) - before:
            ref = operation.get("temp_ref_id")
            named = f", temp_ref_id {ref!r}" if ref is not None else ""
            labels[node_id] = f"node {node_id} (created by operations[{index}]{named})"

    problems.extend(validate(work, catalog, labels))
    return OperationResult(work, created, problems, len(operations))


def validate(
    template: Template, catalog: Catalog, labels: Mapping[str, str] | None = None
) -> list[str]:
    """Every structural fault of a template: unknown types, bad params, cycles.

    ``labels`` names nodes the caller knows by another handle (the operation that
    created them), so that a fault can be traced back to the request.
    """
    labels = labels or {}
    problems: list[str] = []
    for node in template.nodes.values():
        label = labels.get(node.id, f"node {node.id}")
        name = catalog.name_of(node.node_type_id)
        if name is None:
            problems.append(f"{label}: unknown node_type_id {node.node_type_id}")
            continue
        for problem in catalog.check_params(node.node_type_id, node.params):
            problems.append(f"{label} [{name}]: {problem}")
        if catalog.is_input(node.node_type_id) and template.upstream(node.id):
            problems.append(f"{label} [{name}] is an input and takes no edges in")

    cycle = find_cycle(template.nodes, template.edges)
    if cycle:
        problems.append("the graph has a cycle: " + " -> ".join(cycle))
    return problems


def find_cycle(nodes: Iterable[str], edges: Sequence[tuple[str, str]]) -> list[str]:
    """A cycle as a list of node ids (first repeated at the end), or ``[]``."""
    children: dict[str, list[str]] = {node: [] for node in nodes}
    for source, target in edges:
        children.setdefault(source, []).append(target)
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        colour[node] = 1
        stack.append(node)
        for child in children.get(node, []):
            if colour.get(child) == 1:
                return [*stack[stack.index(child) :], child]
            if child not in colour and (found := visit(child)):
                return found
        stack.pop()
        colour[node] = 2
        return []

    for node in list(children):
        if node not in colour and (found := visit(node)):
            return found
    return []


def _create_node(
    work: Template, op: Mapping[str, Any], created: dict[str, str], catalog: Catalog
) -> list[str]:
    node_type_id = op.get("node_type_id")
    if not isinstance(node_type_id, str) or catalog.name_of(node_type_id) is None:
        return [f"unknown node_type_id {node_type_id!r}"]
    params, problems = _params_of(op)
    ref = op.get("temp_ref_id")
    if ref is not None and not isinstance(ref, str):
        problems.append(f"temp_ref_id must be a string, not {ref!r}")
    elif ref is not None and ref in created:
        problems.append(f"temp_ref_id {ref!r} is used twice")
    if problems:
        return problems

    node = TemplateNode(str(uuid.uuid4()), node_type_id, params)
    work.nodes[node.id] = node
    if ref is not None:
        created[ref] = node.id
    return []


def _params_of(op: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The operation's ``params_used``: absent or null is none; else an object."""
    params = op.get("params_used")
    if params is None:
        return {}, []
    if not isinstance(params, Mapping):
        return {}, [f"params_used must be an object, not {params!r}"]
    return dict(params), []


def _node_id(value: Any) -> str | None:
    """A node id as sent: only strings can name a node."""
    return value if isinstance(value, str) else None


def _update_node(
    work: Template, op: Mapping[str, Any], created: dict[str, str], catalog: Catalog
) -> list[str]:
    node_id = _node_id(op.get("agent_node_id"))
    node = work.nodes.get(node_id) if node_id is not None else None
    if node is None:
        return [f"no node {op.get('agent_node_id')!r} in this agent"]
    params, problems = _params_of(op)
    if problems:
        return problems
    node.params = {**node.params, **params}
    return []


def _delete_node(
    work: Template, op: Mapping[str, Any], created: dict[str, str], catalog: Catalog
) -> list[str]:
    node_id = _node_id(op.get("agent_node_id"))
    if node_id is None or node_id not in work.nodes:
        return [f"no node {op.get('agent_node_id')!r} in this agent"]
    del work.nodes[node_id]
    work.edges = [edge for edge in work.edges if node_id not in edge]
    return []


def _resolve_endpoints(
    work: Template, op: Mapping[str, Any], created: Mapping[str, str]
) -> tuple[str | None, str | None, list[str]]:
    problems: list[str] = []
    ends: list[str | None] = []
    for side in ("source", "target"):
        given = op.get(f"{side}_agent_node_id")
        ref = op.get(f"{side}_temp_ref_id")
        node_id: str | None = None
        if given is None and ref is not None:
            node_id = created.get(ref) if isinstance(ref, str) else None
            if node_id is None:
                problems.append(f"{side}_temp_ref_id {ref!r} names no created node")
        elif given is None:
            problems.append(f"{side}_agent_node_id or {side}_temp_ref_id is required")
        elif _node_id(given) is None or given not in work.nodes:
            problems.append(f"no node {given!r} in this agent")
        else:
            node_id = given
        ends.append(node_id)
    return ends[0], ends[1], problems


def _create_connection(
    work: Template, op: Mapping[str, Any], created: dict[str, str], catalog: Catalog
) -> list[str]:
    source, target, problems = _resolve_endpoints(work, op, created)
    if problems or source is None or target is None:
        return problems
    if source == target:
        return [f"node {source} cannot connect to itself"]
    if (source, target) in work.edges:
        return [f"{source} -> {target} is already connected"]
    work.edges.append((source, target))
    return []


def _delete_connection(
    work: Template, op: Mapping[str, Any], created: dict[str, str], catalog: Catalog
) -> list[str]:
    source, target, problems = _resolve_endpoints(work, op, created)
    if problems or source is None or target is None:
        return problems
    if (source, target) not in work.edges:
        return [f"{source} -> {target} is not connected"]
    work.edges.remove((source, target))
    return []


_HANDLERS = {
    "create_node": _create_node,
    "update_node": _update_node,
    "delete_node": _delete_node,
    "create_connection": _create_connection,
    "delete_connection": _delete_connection,
}


@dataclass(frozen=True)
class RuntimeNode:
    id: str
    original_node_id: str
    node_type_id: str
    params: dict[str, Any]
    upstream: tuple[str, ...]
    position: int


def build_runtime(
    template: Template,
    *,
    ignore: Iterable[str] = (),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[RuntimeNode]:
    """The runtime graph: new node ids, params overridden, ignored nodes bypassed.

    An ignored node leaves the graph; each of its upstream nodes is wired straight to
    each of its downstream nodes.
    """
    skipped = set(ignore)
    overrides = overrides or {}
    runtime_id = {node_id: str(uuid.uuid4()) for node_id in template.nodes}

    nodes: list[RuntimeNode] = []
    for position, node in enumerate(template.nodes.values()):
        if node.id in skipped:
            continue
        parents = _kept_parents(template, node.id, skipped)
        params = {**node.params, **overrides.get(node.id, {})}
        nodes.append(
            RuntimeNode(
                id=runtime_id[node.id],
                original_node_id=node.id,
                node_type_id=node.node_type_id,
                params=params,
                upstream=tuple(runtime_id[parent] for parent in parents),
                position=position,
            )
        )
    return nodes


def _kept_parents(template: Template, node_id: str, skipped: set[str]) -> list[str]:
    found: list[str] = []
    pending = list(template.upstream(node_id))
    seen: set[str] = set()
    while pending:
        parent = pending.pop(0)
        if parent in seen:
            continue
        seen.add(parent)
        if parent in skipped:
            pending.extend(template.upstream(parent))
        else:
            found.append(parent)
    return found
