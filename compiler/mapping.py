"""Layer -> core assignment: a maximum bipartite matching over the cores each layer fits (CHIP.md 4).

Deterministic: layers are matched in model order, each trying cores in ascending id and re-routing earlier
layers only when needed (Kuhn's augmenting paths) - the same preference as sinabs' Edmonds-Karp. When no
complete assignment exists the alternating-path set of an unmatched layer is a set of layers that needs
more cores than it can use together (Hall's condition), which is what the error reports.
"""
from __future__ import annotations


def match(feasible: list[list[int]], pinned: dict[int, int] | None = None) -> tuple[list[int | None], list[int]]:
    """``feasible[i]`` = cores layer i fits (ascending). Returns (core per layer or None, culprit layers).

    ``pinned`` maps layer -> core and is honoured first (pinned layers are never re-routed).
    """
    n = len(feasible)
    pinned = pinned or {}
    owner: dict[int, int] = {}  # core -> layer
    for layer, core in pinned.items():
        owner[core] = layer

    def augment(i: int, seen: set[int]) -> bool:
        # a free core first (the shortest augmenting path, as sinabs' BFS finds), then re-route
        for core in feasible[i]:
            if core not in owner and core not in seen:
                seen.add(core)
                owner[core] = i
                return True
        for core in feasible[i]:
            if core in seen:
                continue
            seen.add(core)
            j = owner.get(core)
            if j is None or (j not in pinned and augment(j, seen)):
                owner[core] = i
                return True
        return False

    culprits: list[int] = []
    for i in range(n):
        if i in pinned:
            continue
        seen: set[int] = set()
        if not augment(i, seen):
            # layers reachable from i by alternating paths compete for exactly the cores in `seen`
            group = {i} | {owner[c] for c in seen if c in owner}
            culprits = sorted(group)
            break
    assignment: list[int | None] = [None] * n
    for core, layer in owner.items():
        assignment[layer] = core
    return assignment, culprits
