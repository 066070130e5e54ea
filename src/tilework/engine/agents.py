"""Agents in the store: load and save templates, and show them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tilework.engine.graph import Template, TemplateNode
from tilework.engine.views import TypeDescriber, iso
from tilework.store.models import Agent, AgentConnection, AgentNode, new_id, utcnow


def load_template(session: Session, agent: Agent) -> Template:
    nodes = session.scalars(
        select(AgentNode)
        .where(AgentNode.agent_id == agent.id)
        .order_by(AgentNode.position)
    ).all()
    edges = session.scalars(
        select(AgentConnection)
        .where(AgentConnection.agent_id == agent.id)
        .order_by(AgentConnection.id)
    ).all()
    return Template(
        nodes={n.id: TemplateNode(n.id, n.node_type_id, dict(n.params)) for n in nodes},
        edges=[(e.source_node_id, e.target_node_id) for e in edges],
    )


def save_template(session: Session, agent: Agent, template: Template) -> None:
    session.execute(delete(AgentConnection).where(AgentConnection.agent_id == agent.id))
    session.execute(delete(AgentNode).where(AgentNode.agent_id == agent.id))
    for position, node in enumerate(template.nodes.values()):
        session.add(
            AgentNode(
                id=node.id,
                agent_id=agent.id,
                node_type_id=node.node_type_id,
                params=node.params,
                position=position,
            )
        )
    for source, target in template.edges:
        session.add(
            AgentConnection(
                agent_id=agent.id, source_node_id=source, target_node_id=target
            )
        )
    agent.updated_at = utcnow()


def duplicate(session: Session, agent: Agent) -> Agent:
    template = load_template(session, agent)
    fresh = {node_id: new_id() for node_id in template.nodes}
    copy = Template(
        nodes={
            fresh[n.id]: TemplateNode(fresh[n.id], n.node_type_id, dict(n.params))
            for n in template.nodes.values()
        },
        edges=[(fresh[s], fresh[t]) for s, t in template.edges],
    )
    twin = Agent(
        workspace_id=agent.workspace_id,
        name=f"{agent.name} (copy)",
        description=agent.description,
        visibility=agent.visibility,
    )
    session.add(twin)
    session.flush()
    save_template(session, twin, copy)
    return twin


def agent_view(
    agent: Agent, template: Template, describe: TypeDescriber
) -> dict[str, Any]:
    return {
        "agent": {
            "id": agent.id,
            "name": agent.name,
            "description": agent.description,
            "visibility": agent.visibility,
            "workspace_id": agent.workspace_id,
            "created_at": iso(agent.created_at),
            "updated_at": iso(agent.updated_at),
        },
        "agent_nodes": [
            {
                "agent_node_id": node.id,
                "node_type": describe(node.node_type_id),
                "params_used": node.params,
            }
            for node in template.nodes.values()
        ],
        "connections": [
            {"source_agent_node_id": s, "target_agent_node_id": t}
            for s, t in template.edges
        ],
    }
