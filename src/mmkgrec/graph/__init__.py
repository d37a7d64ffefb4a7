"""Graphs: the user-item graph, knowledge graphs, normalised adjacency."""
