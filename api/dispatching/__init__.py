"""Dispatching: the dispatch cycle (snapshot, pure solve, re-checked writes), the background
loop that runs it, its travel-time provider and its route."""
