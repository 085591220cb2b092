"""Live KPIs of the queue and the fleet."""
