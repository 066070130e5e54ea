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

    def check_params(self, node_type_id: str, params: Mapping[str, Any]) -> list[str]: ...


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

    for index, operation in enumerate(operations):
        handler = _HANDLERS.get(str(operation.get("op")))
        if handler is None:
            problems.append(f"operations[{index}]: unknown op {operation.get('op')!r}")
            continue
        for problem in handler(work, operation, created, catalog):
            problems.append(f"operations[{index}] ({operation['op']}): {problem}")

    problems.extend(validate(work, catalog))
    return OperationResult(work, created, problems, len(operations))


def validate(template: Template, catalog: Catalog) -> list[str]:
    """Every structural fault of a template: unknown types, bad params, cycles."""
    problems: list[str] = []
    for node in template.nodes.values():
        name = catalog.name_of(node.node_type_id)
        if name is None:
            problems.append(f"node {node.id}: unknown node_type_id {node.node_type_id}")
            continue
        for problem in catalog.check_params(node.node_type_id, node.params):
            problems.append(f"node {node.id} ({name}): {problem}")
        if catalog.is_input(node.node_type_id) and template.upstream(node.id):
            problems.append(f"node {node.id} ({name}) is an input and takes no edges in")

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
    node_type_id = str(op.get("node_type_id") or "")
    if catalog.name_of(node_type_id) is None:
        return [f"unknown node_type_id {node_type_id!r}"]
    params = op.get("params_used") or {}
    if not isinstance(params, Mapping):
        return ["params_used must be an object"]

    node = TemplateNode(str(uuid.uuid4()), node_type_id, dict(params))
    work.nodes[node.id] = node
    ref = op.get("temp_ref_id")
    if ref is not None:
        if ref in created:
            return [f"temp_ref_id {ref!r} is used twice"]
        created[str(ref)] = node.id
    return []


def _update_node(
    work: Template, op: Mapping[str, Any], created: dict[str, str], catalog: Catalog
) -> list[str]:
    node = work.nodes.get(str(op.get("agent_node_id")))
    if node is None:
        return [f"no node {op.get('agent_node_id')!r} in this agent"]
    params = op.get("params_used") or {}
    if not isinstance(params, Mapping):
        return ["params_used must be an object"]
    node.params = {**node.params, **params}
    return []


def _delete_node(
    work: Template, op: Mapping[str, Any], created: dict[str, str], catalog: Catalog
) -> list[str]:
    node_id = str(op.get("agent_node_id"))
    if node_id not in work.nodes:
        return [f"no node {node_id!r} in this agent"]
    del work.nodes[node_id]
    work.edges = [edge for edge in work.edges if node_id not in edge]
    return []


def _resolve_endpoints(
    work: Template, op: Mapping[str, Any], created: Mapping[str, str]
) -> tuple[str | None, str | None, list[str]]:
    problems: list[str] = []
    ends: list[str | None] = []
    for side in ("source", "target"):
        node_id = op.get(f"{side}_agent_node_id")
        ref = op.get(f"{side}_temp_ref_id")
        if node_id is None and ref is not None:
            node_id = created.get(str(ref))
            if node_id is None:
                problems.append(f"{side}_temp_ref_id {ref!r} names no created node")
        elif node_id is None:
            problems.append(f"{side}_agent_node_id or {side}_temp_ref_id is required")
        elif node_id not in work.nodes:
            problems.append(f"no node {node_id!r} in this agent")
            node_id = None
        ends.append(str(node_id) if node_id is not None else None)
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
