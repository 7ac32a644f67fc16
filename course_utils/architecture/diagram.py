"""The architecture diagram, generated from the running system's wiring (never drawn by hand).

:func:`wiring_of` reads a :class:`~.workers.Pipeline`: its bus backend (``bus.name``), its stages
(``Pipeline.stages()``: topic, consumer group, handler, in pipeline order) and the components each
handler's code refers to (the store, the vector index, the model caller, the tenant controls).
:func:`mermaid` renders that as a Mermaid flowchart and :func:`figure` as a matplotlib figure laid
out left to right. Rewire the pipeline and both change with it.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["StageWiring", "Wiring", "wiring_of", "mermaid", "figure"]

# Pipeline attributes a handler may use, and the role each plays. The box is named by the live
# object's class, so a pipeline given another store shows that store.
_COMPONENTS = {
    "index": "vector index",
    "store": "conversation store",
    "caller": "Anthropic API",
    "controls": "tenant controls",
    "router": "triage router",
}


@dataclass(frozen=True)
class StageWiring:
    """One worker: the topic it consumes, its consumer group, its handler, what it publishes and uses."""

    topic: str
    group: str
    handler: str
    publishes: str | None
    uses: tuple[str, ...]


@dataclass(frozen=True)
class Wiring:
    """What the diagram draws: the bus backend, the stages in order, and the components they use."""

    bus: str
    stages: tuple[StageWiring, ...]
    components: dict[str, str]
    """Attribute name -> label (``"store"`` -> ``"DeskStore\\n(conversation store)"``)."""

    @property
    def topics(self) -> list[str]:
        return [s.topic for s in self.stages]

    @property
    def groups(self) -> list[str]:
        return [s.group for s in self.stages]


def _names_used(func: Callable[..., Any], owner: Any) -> set[str]:
    """Attribute and global names ``func``'s code refers to, following calls into ``owner``'s private
    methods one level (a handler that delegates its write to ``self._record_usage`` still uses the store)."""
    code = getattr(getattr(func, "__func__", func), "__code__", None)
    if code is None:
        return set()
    names = set(code.co_names)
    for name in list(names):
        helper = getattr(owner, name, None) if name.startswith("_") else None
        if isinstance(helper, types.MethodType):
            names |= set(helper.__func__.__code__.co_names)
    return names


def wiring_of(pipeline: Any) -> Wiring:
    """Read the wiring of a running :class:`~.workers.Pipeline` (or anything with ``bus`` and ``stages()``).

    Each stage publishes the topic the next stage consumes (``stages()`` is in pipeline order); the
    last stage publishes nothing. A component is drawn only if the pipeline has it (not None) and
    a handler's code refers to it.
    """
    stages = list(pipeline.stages())
    if not stages:
        raise ValueError("the pipeline wires no stages: nothing to draw")
    present = {attr: getattr(pipeline, attr, None) for attr in _COMPONENTS}
    wired: list[StageWiring] = []
    for i, (topic, group, handler) in enumerate(stages):
        used = _names_used(handler, pipeline)
        uses = tuple(attr for attr in _COMPONENTS if present[attr] is not None and attr in used)
        publishes = stages[i + 1][0] if i + 1 < len(stages) else None
        wired.append(StageWiring(topic, group, getattr(handler, "__name__", repr(handler)), publishes, uses))
    in_use = {attr for s in wired for attr in s.uses}
    components = {}
    for attr in _COMPONENTS:
        if attr in in_use:
            obj = present[attr]
            # The live object's class names the box (DeskStore, VectorIndex, ModelCaller), the role under it.
            components[attr] = f"{type(obj).__name__}\n({_COMPONENTS[attr]})"
    return Wiring(str(getattr(pipeline.bus, "name", type(pipeline.bus).__name__)), tuple(wired), components)


def _as_wiring(system: Any) -> Wiring:
    return system if isinstance(system, Wiring) else wiring_of(system)


def _node_id(prefix: str, name: str) -> str:
    return prefix + "".join(c if c.isalnum() else "_" for c in name)


def mermaid(system: Any) -> str:
    """A Mermaid ``flowchart LR`` of ``system`` (a Pipeline or a :class:`Wiring`): the topics inside the
    bus's subgraph, one node per consumer group (with its handler), dashed edges to the components."""
    w = _as_wiring(system)
    lines = ["flowchart LR", '    client(["client: POST /messages"])']
    lines.append(f'    subgraph bus["event bus: {w.bus}"]')
    for topic in w.topics:
        lines.append(f'        {_node_id("t_", topic)}[["{topic}"]]')
    lines.append("    end")
    for s in w.stages:
        lines.append(f'    {_node_id("g_", s.group)}["{s.group}<br/>{s.handler}"]')
    for attr, label in w.components.items():
        text = label.replace("\n", "<br/>").replace('"', "'")
        lines.append(f'    {_node_id("c_", attr)}[("{text}")]')
    lines.append(f"    client --> {_node_id('t_', w.topics[0])}")
    for s in w.stages:
        lines.append(f"    {_node_id('t_', s.topic)} -->|consumer group| {_node_id('g_', s.group)}")
        if s.publishes is not None:
            lines.append(f"    {_node_id('g_', s.group)} -->|publishes| {_node_id('t_', s.publishes)}")
        for attr in s.uses:
            lines.append(f"    {_node_id('g_', s.group)} -.-> {_node_id('c_', attr)}")
    return "\n".join(lines) + "\n"


def figure(system: Any, *, title: str | None = None) -> Any:
    """A matplotlib figure of ``system`` laid out left to right: the client, then alternating topics
    (top row, inside the bus band) and consumer groups (middle row), the components below.

    Every box is sized to its label, so labels never overlap (the tests check the rendered extents).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    w = _as_wiring(system)
    step, box_w, box_h, font = 2.4, 2.1, 0.7, 8
    y_topic, y_group, y_comp = 2.0, 0.6, -0.9
    x_client = 0.0
    xs_topic = [step * (1 + 2 * i) for i in range(len(w.stages))]
    xs_group = [x + step for x in xs_topic]
    width = xs_group[-1] + step
    fig, ax = plt.subplots(figsize=(max(8.0, width * 0.62), 4.2), layout="constrained")

    def box(x: float, y: float, text: str, color: str, style: str = "round,pad=0.05") -> None:
        ax.add_patch(
            FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h, boxstyle=style, fc=color, ec="#333333", lw=1)
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=font, wrap=False)

    def arrow(a: tuple[float, float], b: tuple[float, float], dashed: bool = False) -> None:
        ax.add_patch(
            FancyArrowPatch(
                a,
                b,
                arrowstyle="-|>",
                mutation_scale=10,
                lw=1,
                ls="--" if dashed else "-",
                color="#444444",
                shrinkA=2,
                shrinkB=2,
            )
        )

    # The bus band: every topic lives in it.
    ax.add_patch(
        FancyBboxPatch(
            (xs_topic[0] - box_w / 2 - 0.3, y_topic - box_h / 2 - 0.2),
            xs_topic[-1] - xs_topic[0] + box_w + 0.6,
            box_h + 0.65,
            boxstyle="round,pad=0.02",
            fc="#eef3fb",
            ec="#8aa4cc",
            lw=1,
        )
    )
    ax.text(
        xs_topic[0] - box_w / 2 - 0.2,
        y_topic + box_h / 2 + 0.2,
        f"event bus: {w.bus}",
        fontsize=font,
        ha="left",
        va="center",
        color="#35507a",
    )
    box(x_client, y_group, "client\nPOST /messages", "#ffffff")
    for x, s in zip(xs_topic, w.stages):
        box(x, y_topic, s.topic, "#dbe7f7")
    for x, s in zip(xs_group, w.stages):
        box(x, y_group, f"{s.group}\n{s.handler}", "#fdf0d5")
    arrow((x_client + box_w / 2, y_group), (xs_topic[0] - box_w / 2, y_topic - box_h / 4))
    by_topic = dict(zip(w.topics, xs_topic))
    for xt, xg, s in zip(xs_topic, xs_group, w.stages):
        arrow((xt + box_w / 4, y_topic - box_h / 2), (xg - box_w / 4, y_group + box_h / 2))
        if s.publishes in by_topic:  # a topic no stage consumes has no box to point at
            arrow((xg + box_w / 4, y_group + box_h / 2), (by_topic[s.publishes] - box_w / 4, y_topic - box_h / 2))
    # Components: one box each, under the mean position of the groups that use it, spread apart.
    users = {attr: [xg for xg, s in zip(xs_group, w.stages) if attr in s.uses] for attr in w.components}
    wanted = sorted(users, key=lambda a: sum(users[a]) / len(users[a]))
    placed: dict[str, float] = {}
    last = -float("inf")
    for attr in wanted:
        x = max(sum(users[attr]) / len(users[attr]), last + box_w + 0.5)
        placed[attr] = last = x
    for attr, x in placed.items():
        box(x, y_comp, w.components[attr], "#e3f2e1", style="round,pad=0.05")
        for xg in users[attr]:
            arrow((xg, y_group - box_h / 2), (x, y_comp + box_h / 2), dashed=True)
    right = max([width, *[x + box_w for x in placed.values()]])
    ax.set_xlim(x_client - box_w / 2 - 0.3, right)
    ax.set_ylim(y_comp - box_h, y_topic + box_h + 0.4)
    ax.set_axis_off()
    ax.set_title(title or f"Support desk wiring: {len(w.stages)} stages on the {w.bus} bus", fontsize=11)
    return fig
