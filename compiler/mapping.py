"""Layer -> core assignment: maximum bipartite matching by Edmonds-Karp, exactly as sinabs 3.1.3
``mapping.py`` builds and searches its flow graph (the rules are in chips.py and validate.py).

sinabs builds source -> layer -> core -> sink with unit capacities, edges added in layer order and, per
layer, in ascending core id, and augments along BFS shortest paths until none is left. The assignment
depends on that order, so we build the same graph in the same order: given the same layer order and the
same feasible cores, both give the same cores (tested against sinabs' own module). Layers pinned by the
user keep their cores; the rest are matched around them.

When no complete assignment exists, the layers reachable from the source in the final residual graph
compete for fewer cores than they are (Hall's condition): that set is what the error reports.
"""
from __future__ import annotations

from collections import deque

__all__ = ["match"]


class _Edge:
    __slots__ = ("s", "t", "cap", "flow", "rev")

    def __init__(self, s: int, t: int, cap: int):
        self.s, self.t, self.cap, self.flow = s, t, cap, 0
        self.rev: _Edge | None = None


def _pair(graph: list[list[_Edge]], s: int, t: int) -> None:
    fwd, back = _Edge(s, t, 1), _Edge(t, s, 0)
    fwd.rev, back.rev = back, fwd
    graph[s].append(fwd)
    graph[t].append(back)


def _flow_graph(feasible: list[list[int]], n_cores: int) -> list[list[_Edge]]:
    """Nodes: 0 source, 1..n layers, then one per core, then the sink (sinabs ``make_flow_graph``)."""
    n = len(feasible)
    graph: list[list[_Edge]] = [[] for _ in range(n + n_cores + 2)]
    for i in range(n):
        _pair(graph, 0, i + 1)
    for i, cores in enumerate(feasible):
        for c in cores:
            _pair(graph, i + 1, n + 1 + c)
    sink = len(graph) - 1
    for c in range(n_cores):
        _pair(graph, n + 1 + c, sink)
    return graph


def _bfs(graph: list[list[_Edge]], source: int) -> list[_Edge | None]:
    pred: list[_Edge | None] = [None] * len(graph)
    q = deque([source])
    while q:
        cur = q.popleft()
        for e in graph[cur]:
            if pred[e.t] is None and e.t != source and e.cap > e.flow:
                pred[e.t] = e
                q.append(e.t)
    return pred


def _edmonds_karp(graph: list[list[_Edge]]) -> None:
    sink = len(graph) - 1
    while True:
        pred = _bfs(graph, 0)
        if pred[sink] is None:
            return
        e = pred[sink]
        while e is not None:  # unit capacities: every augmenting path carries 1
            e.flow += 1
            e.rev.flow -= 1  # type: ignore[union-attr]  # every edge has its reverse
            e = pred[e.s]


def match(feasible: list[list[int]], pinned: dict[int, int] | None = None, n_cores: int = 9
          ) -> tuple[list[int | None], list[int]]:
    """``feasible[i]`` = cores layer i fits (ascending), layers in model (topological) order.

    Returns (core per layer or None, culprit layers); culprits is empty when every layer has a core.
    ``pinned`` maps layer -> core and is honoured first (its cores are taken from the others).
    """
    pinned = dict(pinned or {})
    taken = set(pinned.values())
    free = [i for i in range(len(feasible)) if i not in pinned]
    sub = [[c for c in feasible[i] if c not in taken] for i in free]
    graph = _flow_graph(sub, n_cores)
    _edmonds_karp(graph)
    assignment: list[int | None] = [None] * len(feasible)
    for layer, core in pinned.items():
        assignment[layer] = core
    n = len(sub)
    for k, i in enumerate(free):
        for e in graph[k + 1]:
            if e.t > n and e.flow == 1:
                assignment[i] = e.t - n - 1
    if all(a is not None for a in assignment):
        return assignment, []
    pred = _bfs(graph, 0)  # residual reachability from the source: the Hall violator
    culprits = [free[k] for k in range(n) if pred[k + 1] is not None]
    return assignment, culprits
